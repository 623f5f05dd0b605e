//! `[limits]`: the edges' timeouts, caps and rates, their defaults and their checks.

use serde::Deserialize;

use super::error::ConfigError;

/// `[limits]`: the edges (DESIGN.md §8). Every wait is bounded and every resource capped, so a
/// slow database, a slow client or a flood answers fast instead of piling up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest wait for a database connection (and SQLite's busy timeout) before a request
    /// answers 503 `database_unavailable` and a webhook 5xx.
    pub db_acquire_timeout_ms: u64,
    /// `/readyz`'s own bound on its database check.
    pub readiness_timeout_ms: u64,
    /// A whole request, body included (the `?wait=` long poll gets its wait on top).
    pub request_timeout_ms: u64,
    /// Reading a request's head; also how long an idle keep-alive connection is kept.
    pub header_read_timeout_ms: u64,
    /// Open client connections; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests being handled (long polls and health probes aside); max(1, max_in_flight / 8)
    /// of them only webhooks may take. Past it, 503 `overloaded` with `Retry-After`.
    pub max_in_flight: usize,
    /// Open `?wait=` long polls; past it a wait is answered at once with the current state.
    /// Unset: 2048, or half of `max_connections` if that is less (waits hold connections).
    pub max_waits: Option<usize>,
    pub api_body_bytes: usize,
    pub webhook_body_bytes: usize,
    /// Requests per second per API key (burst of the same size); 429 past it.
    pub api_rate_per_key: u32,
    /// Webhook requests per second per source address (burst of the same size).
    pub webhook_rate_per_ip: u32,
    /// Outbound calls to the providers: connecting, and the whole call.
    pub provider_connect_timeout_ms: u64,
    pub provider_timeout_ms: u64,
}

/// `max_waits` when unset (and `max_connections` allows it).
const DEFAULT_MAX_WAITS: usize = 2_048;

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            db_acquire_timeout_ms: 2_000,
            readiness_timeout_ms: 1_000,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            max_connections: 10_000,
            max_in_flight: 2_048,
            max_waits: None,
            api_body_bytes: 64 * 1024,
            webhook_body_bytes: 64 * 1024,
            api_rate_per_key: 2_000,
            webhook_rate_per_ip: 200,
            provider_connect_timeout_ms: 5_000,
            provider_timeout_ms: 15_000,
        }
    }
}

impl LimitsConfig {
    pub fn ms(value: u64) -> std::time::Duration {
        std::time::Duration::from_millis(value)
    }

    /// The cap on open long polls: `max_waits`, or its default.
    pub fn max_waits(&self) -> usize {
        self.max_waits
            .unwrap_or_else(|| DEFAULT_MAX_WAITS.min(self.max_connections / 2))
    }

    /// The in-flight slots only webhooks may take (DESIGN.md §13): an eighth, at least one.
    pub fn webhook_reserve(&self) -> usize {
        (self.max_in_flight / 8).max(1)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        let positive = [
            ("db_acquire_timeout_ms", self.db_acquire_timeout_ms),
            ("readiness_timeout_ms", self.readiness_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("max_waits", self.max_waits() as u64),
            ("api_body_bytes", self.api_body_bytes as u64),
            ("webhook_body_bytes", self.webhook_body_bytes as u64),
            ("api_rate_per_key", u64::from(self.api_rate_per_key)),
            ("webhook_rate_per_ip", u64::from(self.webhook_rate_per_ip)),
            (
                "provider_connect_timeout_ms",
                self.provider_connect_timeout_ms,
            ),
            ("provider_timeout_ms", self.provider_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("limits.{key} must be positive"));
        }
        if self.max_in_flight < 2 {
            return invalid(
                "limits.max_in_flight must be at least 2: webhooks have a reserved share".into(),
            );
        }
        // Each open wait holds its connection: all of them must leave connections for health
        // probes, webhooks and the rest of the API.
        if self.max_waits() >= self.max_connections {
            return invalid(format!(
                "limits.max_waits ({}) must be below limits.max_connections ({}): every open \
                 wait holds a connection",
                self.max_waits(),
                self.max_connections
            ));
        }
        Ok(())
    }
}
