//! Failed sign-ins per source address: at most [`MAX_FAILURES`] in a [`WINDOW`], then that
//! address is refused until the window has passed. (Per user, failures are counted in the
//! database, so every instance sees them: `console_users`.) This count is per instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 30;
pub const WINDOW: Duration = Duration::from_secs(600);
/// Addresses remembered at most; past it the oldest windows are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// Whether `ip` may try now.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some((since, n)) => now.duration_since(*since) >= WINDOW || *n < MAX_FAILURES,
            None => true,
        }
    }

    /// One more failure from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_passes() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(t.allows(ip, start));
            t.failed(ip, start);
        }
        assert!(!t.allows(ip, start));
        assert!(t.allows(other, start));
        assert!(t.allows(ip, start + WINDOW));
    }
}
