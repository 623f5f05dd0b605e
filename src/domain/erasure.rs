//! An account deletion request (DESIGN.md §10): its id, its status and the row as stored.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ids::{EmployerId, prefixed_id};
use crate::clock::rfc3339_beijing;

/// `era_` + 24 hex digits, as [`ErasureId::generate`] makes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ErasureId(String);

impl ErasureId {
    pub fn generate() -> ErasureId {
        ErasureId(prefixed_id("era"))
    }

    /// An id as a path or a row gives it: at most 64 characters of letters, digits and `_`.
    pub fn parse(text: &str) -> Option<ErasureId> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| ErasureId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErasureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stored as its lowercase name (column `privacy_erasure.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErasureStatus {
    Pending,
    Completed,
}

impl ErasureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Pending => "pending",
            ErasureStatus::Completed => "completed",
        }
    }

    pub fn parse(text: &str) -> Option<ErasureStatus> {
        match text {
            "pending" => Some(ErasureStatus::Pending),
            "completed" => Some(ErasureStatus::Completed),
            _ => None,
        }
    }
}

/// One erasure request as stored. The employer id itself is never read back out of it except
/// to carry it out.
#[derive(Debug, Clone)]
pub struct ErasureRow {
    pub erasure_id: ErasureId,
    pub status: ErasureStatus,
    pub pseudonym: EmployerId,
    pub requested_at: DateTime<Utc>,
    pub due_by: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Who asked for it (`console:<name>`, `api_key:<id>`, `cli`); `None` for requests from
    /// before actors were recorded.
    pub actor: Option<super::Actor>,
}

impl ErasureRow {
    /// As the API and the CLI show it: no employer id, only its pseudonym once carried out.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "erasure_id": self.erasure_id,
            "status": self.status,
            "requested_at": rfc3339_beijing(self.requested_at),
            "due_by": rfc3339_beijing(self.due_by),
            "actor": self.actor,
        });
        if let Some(at) = self.completed_at {
            v["completed_at"] = rfc3339_beijing(at).into();
            v["pseudonym"] = self.pseudonym.as_str().into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_text_is_refused() {
        for s in [ErasureStatus::Pending, ErasureStatus::Completed] {
            assert_eq!(ErasureStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ErasureStatus::parse("done"), None);
    }

    #[test]
    fn generated_ids_parse_back_and_odd_ones_are_refused() {
        let id = ErasureId::generate();
        assert!(id.as_str().starts_with("era_"));
        assert_eq!(ErasureId::parse(id.as_str()), Some(id));
        assert!(ErasureId::parse("").is_none());
        assert!(ErasureId::parse("era/../x").is_none());
        assert!(ErasureId::parse(&"a".repeat(65)).is_none());
    }
}
