//! Storage: sqlx `Any` over SQLite (embedded default) or PostgreSQL (production), as [`Db`]: a
//! writer and a reader. ALL of paygate's SQL lives under this module, one file per table or
//! aggregate, behind functions that take and return domain types.
//!
//! Both backends run the same SQL: `$n` placeholders, `ON CONFLICT`, `RETURNING`, integer
//! fen and epoch-millisecond times. Uniqueness and conditional updates do the concurrency
//! work; the in-process writer queue of SQLite only orders writes, it guards nothing.
//!
//! This file is a facade: it declares the children and re-exports what callers use. What the
//! children share lives in leaf files (`sql`, `sqlite`, `exec`, `db`), which they import
//! directly, so no child imports its parent.

pub mod console;
pub mod db;
pub mod entitlements;
pub mod erased_employers;
pub mod erasure;
pub mod erasures;
pub mod events;
pub mod exec;
pub mod idempotency;
pub mod idempotency_keys;
pub mod inline;
pub mod jobs;
pub mod order_search;
pub mod orders;
pub mod overview;
pub mod payments;
pub mod reconciliations;
pub mod refunds;
pub mod reread;
pub mod retention;
pub mod sql;
pub mod sqlite;
pub mod writer;

pub use db::{Backend, Db};
pub use sql::{
    Columns, Found, Statement, Tx, Value, corrupt, fen_of, is_unavailable, is_unique_violation,
    json_column, time_of,
};
