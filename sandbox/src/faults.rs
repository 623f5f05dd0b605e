//! Faults a test can switch on (`PUT /sandbox/faults`). Every field has a harmless default, so a
//! test sends only what it wants; an unknown field is refused, so a typo never passes silently.
//! Unless a field says otherwise it applies to both halves, WeChat Pay and Alipay.

use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// How long the `reorder` fault holds notifications before releasing the batch (real time).
pub const REORDER_WINDOW_MS: u64 = 300;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Send each callback this many times at once (0 and 1 both mean once), as WeChat may when
    /// several of its servers deliver the same notification within seconds.
    pub duplicate_notifications: u32,
    /// WeChat only. Before each real callback, send one whose `Wechatpay-Signature` starts with
    /// `WECHATPAY/SIGNTEST/`; the merchant must answer it with a non-2xx.
    pub signature_probe: bool,
    /// The next N API requests (WeChat: any; Alipay: any signed `gateway.do` call) answer the
    /// provider's system error before anything else is looked at; counts down as they are used.
    pub api_errors: u32,
    /// Sign every API answer over other bytes, so that a verifying client refuses it.
    pub corrupt_response_signature: bool,
    /// Share (0..=1) of notification delivery attempts that are lost: nothing is sent, the
    /// attempt is recorded unacknowledged with `dropped: true`, and the notification stays on
    /// its retry schedule, so it gets through once the share is lowered (or at once with
    /// `POST /sandbox/notifications/resend`).
    pub drop_notifications: f64,
    /// Every delivery attempt first waits this long (real milliseconds, not divided by
    /// `time_divisor`).
    pub delay_notifications_ms: u64,
    /// Hold notifications and release them newest first: an attempt that finds no batch open
    /// opens one for [`REORDER_WINDOW_MS`]; every attempt made meanwhile joins it; when the
    /// window closes the batch is sent one after another in reverse order of joining (each
    /// answered before the next goes), so a newer notification arrives before an older one.
    pub reorder: bool,
    /// Share (0..=1) of API requests answered with the provider's system error (WeChat: signed
    /// 500 `SYSTEM_ERROR`; Alipay: signed `code` 20000 `isp.unknow-error`), drawn per request
    /// after the counted `api_errors` are used up.
    pub api_error_rate: f64,
    /// Every API answer is held this long before it goes out (real milliseconds). The request
    /// has already been handled when the wait starts: an order, close or refund it makes is
    /// made, so a client that gives up meanwhile sees a timeout from a provider that acted.
    /// This is the fault for "the provider acted but its answer timed out"; a system error
    /// (`api_errors`, `api_error_rate`) is the one for "the provider did nothing".
    pub api_latency_ms: u64,
    /// The race a gateway's close must survive: when a close request arrives for an unpaid
    /// order, the buyer pays it first (its notification starts as usual) and the close is then
    /// refused as for any paid order (WeChat `ORDER_PAID`, Alipay `ACQ.TRADE_STATUS_ERROR`).
    pub pay_before_close: bool,
    /// WeChat only. How WeChat refunds that complete while it is set end: `success` (the
    /// default), `closed` or `abnormal`. Read when a `PROCESSING` refund completes, not when it
    /// is created.
    pub wechat_refund_outcome: WechatRefundOutcome,
    /// Bills: the payment row of this `out_trade_no` is left out (its refund rows stay).
    pub bill_missing_row: Option<String>,
    /// Bills: the payment row of this `out_trade_no` appears twice (the totals are written from
    /// the rows, so the bill still adds up): a duplicate must not hide a missing payment.
    pub bill_duplicate_row: Option<String>,
    /// Bills: one more paid row, 1.00 yuan, for an order the merchant never issued
    /// ([`crate::bill::FOREIGN_PREFIX`] + the date + `0001`), at 00:00:01 of the bill's day.
    pub bill_extra_row: bool,
    /// Bills: the payment row of this `out_trade_no` shows 1 fen more than was paid. The
    /// totals are written from the rows, so the bill still adds up, as a real one would.
    pub bill_altered_amount: Option<String>,
    /// WeChat bills: the payment row of this `out_trade_no` has 交易状态 `REVOKED`. Alipay's
    /// trade bill has no status column: there it changes nothing.
    pub bill_altered_status: Option<String>,
    /// WeChat only: the `hash_value` answered is not the SHA-1 of the file.
    pub bill_wrong_hash: bool,
    /// The bill request answers the provider's "no bill (yet)" error: WeChat 400
    /// `NO_STATEMENT_EXIST`, Alipay `isp.bill_not_exist`.
    pub bill_not_ready: bool,
    /// The download URL handed out has already expired: WeChat's download answers 400
    /// `INVALID_REQUEST`, Alipay's 403.
    pub bill_url_expired: bool,
    /// The file is cut short: WeChat's at the line boundary nearest its middle, before the
    /// summary, with `hash_value` computed over the cut file (so the hash checks out and the
    /// parser's "no summary" is what refuses it); Alipay's ZIP at half its bytes.
    pub bill_truncated: bool,
    /// One detail row carries bytes the file's encoding cannot hold, in place of its payer
    /// value: Alipay a non-GBK sequence, WeChat a non-UTF-8 one (the hash covers them).
    pub bill_bad_encoding: bool,
    /// Bill downloads (both providers) answer 200 and stream zeros without end, as a broken
    /// bill server or a tampered download might: a client must cut the download off itself.
    pub bill_endless_download: bool,
}

/// The end state of a WeChat refund (wechatpay-v3.md §5: `SUCCESS|CLOSED|PROCESSING|ABNORMAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WechatRefundOutcome {
    /// `SUCCESS` with a `success_time`, notified `REFUND.SUCCESS`.
    #[default]
    Success,
    /// `CLOSED` (退款关闭), notified `REFUND.CLOSED`: no money moved, the amount is free again.
    Closed,
    /// `ABNORMAL` (退款异常, e.g. the buyer's card is gone), notified `REFUND.ABNORMAL`: the
    /// sandbox also frees the amount.
    Abnormal,
}

impl Faults {
    /// How many copies of each callback go out.
    pub fn copies(&self) -> u32 {
        self.duplicate_notifications.max(1)
    }

    /// What `PUT /sandbox/faults` refuses with 400: a share outside 0..=1 (or not a number).
    pub fn validate(&self) -> Result<(), String> {
        for (name, share) in [
            ("drop_notifications", self.drop_notifications),
            ("api_error_rate", self.api_error_rate),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be a share between 0 and 1"));
            }
        }
        Ok(())
    }

    /// The wait before each delivery attempt.
    pub fn notification_delay(&self) -> Duration {
        Duration::from_millis(self.delay_notifications_ms)
    }

    /// The wait before each API answer.
    pub fn api_latency(&self) -> Duration {
        Duration::from_millis(self.api_latency_ms)
    }

    /// Draws whether this delivery attempt is lost.
    pub fn drop_this_attempt(&self) -> bool {
        draw(self.drop_notifications)
    }
}

/// True with probability `share`: never at 0 (or below, or NaN), always at 1 (or above).
pub(crate) fn draw(share: f64) -> bool {
    share >= 1.0 || (share > 0.0 && rand::rng().random::<f64>() < share)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Faults, WechatRefundOutcome, draw};

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            let faults = Faults {
                drop_notifications: bad,
                ..Faults::default()
            };
            assert!(faults.validate().is_err(), "{bad}");
            let faults = Faults {
                api_error_rate: bad,
                ..Faults::default()
            };
            assert!(faults.validate().is_err(), "{bad}");
        }
        let edges = Faults {
            drop_notifications: 1.0,
            api_error_rate: 0.0,
            ..Faults::default()
        };
        assert_eq!(edges.validate(), Ok(()));
    }

    #[test]
    fn a_share_of_zero_never_fires_and_one_always_does() {
        for _ in 0..1000 {
            assert!(!draw(0.0));
            assert!(draw(1.0));
            assert!(!draw(f64::NAN));
        }
    }

    #[test]
    fn the_defaults_change_nothing() {
        let faults = Faults::default();
        assert_eq!(faults.copies(), 1);
        assert_eq!(faults.notification_delay(), Duration::ZERO);
        assert_eq!(faults.api_latency(), Duration::ZERO);
        assert!(!faults.drop_this_attempt());
        assert!(!faults.reorder);
        assert_eq!(faults.wechat_refund_outcome, WechatRefundOutcome::Success);
    }

    #[test]
    fn refund_outcomes_are_lowercase_words_and_old_fault_bodies_still_parse() {
        let faults: Faults = serde_json::from_str(r#"{"api_latency_ms": 5}"#).unwrap();
        assert_eq!(faults.wechat_refund_outcome, WechatRefundOutcome::Success);
        for (text, outcome) in [
            ("success", WechatRefundOutcome::Success),
            ("closed", WechatRefundOutcome::Closed),
            ("abnormal", WechatRefundOutcome::Abnormal),
        ] {
            let body = format!(r#"{{"wechat_refund_outcome": "{text}"}}"#);
            let faults: Faults = serde_json::from_str(&body).unwrap();
            assert_eq!(faults.wechat_refund_outcome, outcome);
            assert_eq!(
                serde_json::to_value(&faults).unwrap()["wechat_refund_outcome"],
                text
            );
        }
        assert!(serde_json::from_str::<Faults>(r#"{"wechat_refund_outcome": "CLOSED"}"#).is_err());
    }

    #[test]
    fn the_configured_waits_are_the_milliseconds_given() {
        let faults = Faults {
            delay_notifications_ms: 1500,
            api_latency_ms: 250,
            ..Faults::default()
        };
        assert_eq!(faults.notification_delay(), Duration::from_millis(1500));
        assert_eq!(faults.api_latency(), Duration::from_millis(250));
    }
}
