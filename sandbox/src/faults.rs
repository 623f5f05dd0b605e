//! Faults a test can switch on (`PUT /sandbox/faults`). Every field has a harmless default, so a
//! test sends only what it wants; an unknown field is refused, so a typo never passes silently.
//! New faults (dropped share, delay, reordering, API errors and latency, corrupted response
//! signatures) slot in as further fields.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Send each callback this many times at once (0 and 1 both mean once), as WeChat may when
    /// several of its servers deliver the same notification within seconds.
    pub duplicate_notifications: u32,
    /// Before each real callback, send one whose `Wechatpay-Signature` starts with
    /// `WECHATPAY/SIGNTEST/`; the merchant must answer it with a non-2xx.
    pub signature_probe: bool,
    /// The next N WeChat API requests (order, query, close) answer a signed 500 `SYSTEM_ERROR`
    /// before anything else is looked at; counts down as they are used.
    pub api_errors: u32,
    /// Sign every WeChat API answer over other bytes, so that a verifying client refuses it.
    pub corrupt_response_signature: bool,
}

impl Faults {
    /// How many copies of each callback go out.
    pub fn copies(&self) -> u32 {
        self.duplicate_notifications.max(1)
    }
}
