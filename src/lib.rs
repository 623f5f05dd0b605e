//! paygate
