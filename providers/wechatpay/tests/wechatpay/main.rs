//! Tests of the pure core: the published vectors (`vectors.rs`) and round trips and tamper cases
//! with fixture keys (`round_trip.rs`), the JSAPI/H5/App wire types (`channels.rs`) and platform
//! certificates (`certificates.rs`), refunds (`refunds.rs`), trade bills (`bills.rs`), and the bill
//! client against a minimal HTTP server (`bill_client.rs`). One test binary, to link once.

mod bill_client;
mod bills;
mod certificates;
mod channels;
mod fixtures;
mod properties;
mod refunds;
mod round_trip;
mod vectors;
