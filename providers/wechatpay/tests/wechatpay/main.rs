//! Tests of the pure core: the published vectors (`vectors.rs`) and round trips and tamper cases
//! with fixture keys (`round_trip.rs`). One test binary, to link once.

mod fixtures;
mod round_trip;
mod vectors;
