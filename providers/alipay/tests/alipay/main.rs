//! Integration tests of paygate-alipay, one test binary (linking several is slow on two cores).
//! Every input comes from `tests/fixtures/`; nothing here reads outside the crate or the network.

mod bill_client;
mod bills;
mod client;
mod fixtures;
mod gateway;
mod keys;
mod notifications;
mod properties;
mod requests;
mod responses;
mod returns;
mod simulator;
mod vectors;
