//! The sandbox started on port 0 and driven with paygate-wechatpay's own Client, as the gateway
//! drives it. One test binary, to link once.

mod api;
mod bills;
mod callbacks;
mod cashier;
mod channels;
mod faults;
mod harness;
mod keys_dir;
mod platform;
mod portal;
mod refunds;
