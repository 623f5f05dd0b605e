//! What reconciliation finds (DESIGN.md §10): the class and kind of a discrepancy, one record
//! of one, the count-and-amount tallies of a run, and the Asia/Shanghai day a bill covers.
//! Pure types and rules; the store writes and reads them, the use case computes them.

use std::fmt;

use chrono::NaiveDate;
use serde::{Serialize, Serializer};

use super::Fen;
use crate::clock::{beijing, to_millis};

/// The class of a bill row or a local record, as stored in `reconciliation_discrepancy.class`,
/// shown in the CSV and keyed in a run's summary. `Matched` is only ever a summary key: a
/// matched row is not a discrepancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscrepancyClass {
    Matched,
    /// In the bill, not here.
    MissingLocal,
    /// Here, not in the bill.
    MissingRemote,
    /// Same transaction or refund, another amount.
    AmountMismatch,
    /// One side says it happened, the other not.
    StatusMismatch,
    /// A transaction id the bill lists again (each repeat).
    DuplicateRemote,
}

impl DiscrepancyClass {
    pub const ALL: [DiscrepancyClass; 6] = [
        DiscrepancyClass::Matched,
        DiscrepancyClass::MissingLocal,
        DiscrepancyClass::MissingRemote,
        DiscrepancyClass::AmountMismatch,
        DiscrepancyClass::StatusMismatch,
        DiscrepancyClass::DuplicateRemote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyClass::Matched => "matched",
            DiscrepancyClass::MissingLocal => "missing_local",
            DiscrepancyClass::MissingRemote => "missing_remote",
            DiscrepancyClass::AmountMismatch => "amount_mismatch",
            DiscrepancyClass::StatusMismatch => "status_mismatch",
            DiscrepancyClass::DuplicateRemote => "duplicate_remote",
        }
    }

    /// The class a stored discrepancy row may have (`matched` is never stored).
    pub fn parse_stored(text: &str) -> Option<DiscrepancyClass> {
        Self::ALL[1..].iter().copied().find(|c| c.as_str() == text)
    }
}

/// Ordered by the stored name, so a summary's classes keep the order they always had.
impl Ord for DiscrepancyClass {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for DiscrepancyClass {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for DiscrepancyClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for DiscrepancyClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a discrepancy is about, as stored in `reconciliation_discrepancy.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    Payment,
    Refund,
}

impl DiscrepancyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::Payment => "payment",
            DiscrepancyKind::Refund => "refund",
        }
    }

    pub fn parse(text: &str) -> Option<DiscrepancyKind> {
        [DiscrepancyKind::Payment, DiscrepancyKind::Refund]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for DiscrepancyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One discrepancy, as stored and as the CSV shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub class: DiscrepancyClass,
    pub kind: DiscrepancyKind,
    /// `None`: the bill row names no merchant order.
    pub order_no: Option<String>,
    pub provider_txn_id: Option<String>,
    pub refund_no: Option<String>,
    pub bill_amount_fen: Option<Fen>,
    pub local_amount_fen: Option<Fen>,
    pub bill_status: Option<String>,
    pub local_status: Option<String>,
    pub healed: bool,
    pub note: Option<String>,
    /// `duplicate_remote`: the amount of the row that repeats the transaction id
    /// (`bill_amount_fen` is the first row's).
    pub duplicate_amount_fen: Option<Fen>,
}

impl Discrepancy {
    /// A discrepancy of `class` and `kind` with nothing else known yet.
    pub fn new(class: DiscrepancyClass, kind: DiscrepancyKind) -> Discrepancy {
        Discrepancy {
            class,
            kind,
            order_no: None,
            provider_txn_id: None,
            refund_no: None,
            bill_amount_fen: None,
            local_amount_fen: None,
            bill_status: None,
            local_status: None,
            healed: false,
            note: None,
            duplicate_amount_fen: None,
        }
    }
}

/// Count and amount of one class (or of one side's totals).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub amount_fen: i64,
}

impl Tally {
    pub fn add(&mut self, amount: Fen) {
        self.count += 1;
        self.amount_fen += amount.get();
    }
}

/// The Asia/Shanghai day `date` as [start, end) in epoch milliseconds.
pub fn day_bounds(date: NaiveDate) -> (i64, i64) {
    // Beijing has no daylight saving: its midnight is always 16:00 UTC the day before.
    let offset_ms = i64::from(beijing().local_minus_utc()) * 1000;
    let start = to_millis(date.and_time(chrono::NaiveTime::MIN).and_utc()) - offset_ms;
    (start, start + 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beijing_day_starts_at_16_utc_the_day_before() {
        let (start, end) = day_bounds(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        use chrono::TimeZone;
        let utc = chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 16, 0, 0)
            .unwrap();
        assert_eq!(start, to_millis(utc));
        assert_eq!(end - start, 86_400_000);
    }

    #[test]
    fn classes_and_kinds_are_stored_as_their_names_and_matched_is_never_stored() {
        for class in DiscrepancyClass::ALL {
            let stored = DiscrepancyClass::parse_stored(class.as_str());
            assert_eq!(
                stored,
                (class != DiscrepancyClass::Matched).then_some(class)
            );
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::json!(class.as_str())
            );
        }
        assert_eq!(DiscrepancyClass::parse_stored("Missing_Local"), None);
        assert_eq!(
            DiscrepancyKind::parse("refund"),
            Some(DiscrepancyKind::Refund)
        );
        assert_eq!(DiscrepancyKind::parse("payments"), None);
    }

    #[test]
    fn a_summary_orders_its_classes_by_name() {
        let mut sorted = DiscrepancyClass::ALL.to_vec();
        sorted.sort();
        let names: Vec<&str> = sorted.iter().map(|c| c.as_str()).collect();
        let mut by_name = names.clone();
        by_name.sort();
        assert_eq!(names, by_name);
    }
}
