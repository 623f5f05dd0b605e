//! The idempotency claim a request owns (DESIGN.md §7): the use cases that create something
//! (an order, a refund, an erasure request) store their answer under it in the same
//! transaction as the change it reports. A plain pair of borrowed strings, so every use case
//! can take it without depending on another.

/// The `(api key, Idempotency-Key)` claim a request owns.
#[derive(Debug, Clone, Copy)]
pub struct OwnedClaim<'a> {
    pub api_key_id: &'a str,
    pub key: &'a str,
}
