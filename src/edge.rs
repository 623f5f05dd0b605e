//! The edges (issues 12 and 20): how the gateway faces the internet. Every wait bounded, every
//! resource capped, one error shape per audience, all from `[limits]`:
//!
//! | what | how | answer past it |
//! |---|---|---|
//! | reading a request head; an idle keep-alive connection | hyper's HTTP/1 `header_read_timeout` | connection closed |
//! | open connections | a semaphore taken before `accept` | new ones wait in the listen backlog |
//! | a request head hyper cannot parse (400, 414, 431) | hyper answers; [`wire`] rewrites the bodiless answer | the envelope (a webhook route: its provider's shape) |
//! | a declared `Content-Length` over the route's limit | [`body_limit`](body::body_limit), before any body is read | 413 `payload_too_large` |
//! | requests in flight, per class of traffic | [`admission`] | 503 `overloaded` with `Retry-After: 1`; a long poll is answered at once |
//! | a whole request, body included | tower-http `TimeoutLayer` (in `api::router`) | 408 `request_timeout` |
//! | a body that grows over its limit | axum `DefaultBodyLimit` per route (in `api::router`) | 413 `payload_too_large` |
//! | requests per API key / webhook source address | governor keyed limiters | 429 `rate_limited`, `Retry-After` |
//!
//! [`one_shape`] gives every error its audience's shape: the JSON envelope of DESIGN.md §4 for
//! the API (axum's own rejections, 404, 405, 413, 415, 408, 503 included), WeChat's
//! `{"code":"FAIL","message":…}` on `/webhooks/wechatpay`, the body `fail` on
//! `/webhooks/alipay`. The embedded sandbox (`/sandbox/…`) is left as the providers answer.

pub mod admission;
mod audience;
mod body;
mod rate;
mod serve;
mod shape;
mod wire;

pub use rate::{RateLimited, RateLimits, webhook_rate};
pub use serve::serve;
pub use shape::one_shape;
