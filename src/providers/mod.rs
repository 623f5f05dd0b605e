//! The gateway's view of a payment provider: one trait, one implementation per provider
//! crate, registered by id. Adding a provider is one adapter here and one line in `build`.
//!
//! A facade: `port.rs` (the `PaymentProvider` trait and the types that cross it),
//! `registry.rs` (`Registry`), the adapters `wechatpay.rs` and `alipay.rs`.

pub mod alipay;
pub mod bills;
pub mod bounds;
mod port;
mod registry;
mod reports;
pub mod wechatpay;

pub use bills::BillError;
pub use port::{
    Callback, CallbackError, Mismatch, NewPayment, NewRefund, PayerHints, PaymentInstructions,
    PaymentProvider, ProviderError, RefundState, ReturnError, ReturnOrder, TradeStatus,
};
pub use registry::Registry;
pub use reports::{PaidTrade, RefundFailure, RefundOutcome, RefundReport};
