//! Entitlements, their audit trail and the résumés they cover: every statement of the
//! entitlement rules (the `entitlements` use case), which keeps the rules and calls these.
//!
//! Writes take an [`Exec`], so each runs inside whichever transaction its caller runs (the
//! settlement, a first access, the refund settlement, the erasure, the expiry job); reads by
//! key go through [`Db::lookup_optional`].

use chrono::{DateTime, Utc};

use super::db::Db;
use super::exec::Exec;
use super::sql::{Columns, Value, parsed, time_of};
use crate::clock::to_millis;
use crate::domain::status::EntitlementStatus;
use crate::domain::{Action, EmployerId, OrderNo};

/// An entitlement as stored, every column in its domain type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRow {
    pub entitlement_id: String,
    pub employer_id: EmployerId,
    pub order_no: OrderNo,
    pub plan_id: String,
    pub action: Action,
    /// None: unlimited within the term.
    pub quota: Option<i64>,
    pub used: i64,
    /// As stored: an `active` row past `valid_until` is expired for every reader
    /// ([`EntitlementStatus::at`]).
    pub status: EntitlementStatus,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

/// `SELECT` of every column [`from_row`] reads, then `$rest` (a literal).
macro_rules! select_rows {
    ($rest:literal) => {
        concat!(
            "SELECT entitlement_id, employer_id, order_no, plan_id, action, quota, used, status, \
             valid_from, valid_until FROM entitlement ",
            $rest
        )
    };
}

fn from_row(r: &impl Columns) -> Result<EntitlementRow, sqlx::Error> {
    let text = |column: &'static str| r.column::<String>(column);
    Ok(EntitlementRow {
        entitlement_id: text("entitlement_id")?,
        employer_id: parsed("employer_id", &text("employer_id")?, EmployerId::parse)?,
        order_no: parsed("order_no", &text("order_no")?, OrderNo::parse)?,
        plan_id: text("plan_id")?,
        action: parsed("action", &text("action")?, Action::parse)?,
        quota: r.column("quota")?,
        used: r.column("used")?,
        status: parsed("status", &text("status")?, EntitlementStatus::parse)?,
        valid_from: time_of("valid_from", r.column("valid_from")?)?,
        valid_until: time_of("valid_until", r.column("valid_until")?)?,
    })
}

async fn select(
    ex: &mut Exec<'_>,
    sql: &'static str,
    values: &[Value],
) -> Result<Vec<EntitlementRow>, sqlx::Error> {
    ex.all(sql, values).await?.iter().map(from_row).collect()
}

/// What an entitlement's audit line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Granted,
    Consumed,
    Reduced,
    Revoked,
    Expired,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Granted => "granted",
            AuditKind::Consumed => "consumed",
            AuditKind::Reduced => "reduced",
            AuditKind::Revoked => "revoked",
            AuditKind::Expired => "expired",
        }
    }
}

/// Appends one line to an entitlement's audit trail (append-only).
pub async fn audit(
    ex: &mut Exec<'_>,
    entitlement_id: &str,
    kind: AuditKind,
    resume_id: Option<&str>,
    quota_delta: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let values = [
        entitlement_id.into(),
        kind.as_str().into(),
        resume_id.into(),
        quota_delta.into(),
        now_ms.into(),
    ];
    ex.execute(
        "INSERT INTO entitlement_audit (entitlement_id, kind, resume_id, quota_delta, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        &values,
    )
    .await?;
    Ok(())
}

/// Writes `row` (a new `active` entitlement, `used` 0) with its `granted` audit line. The
/// unique (order_no, action) constraint makes a second grant for one order impossible.
pub async fn insert(
    ex: &mut Exec<'_>,
    row: &EntitlementRow,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let now_ms = to_millis(now);
    let values = [
        row.entitlement_id.as_str().into(),
        row.employer_id.as_str().into(),
        row.order_no.as_str().into(),
        row.plan_id.as_str().into(),
        row.action.as_str().into(),
        row.quota.into(),
        row.used.into(),
        row.status.as_str().into(),
        to_millis(row.valid_from).into(),
        to_millis(row.valid_until).into(),
        now_ms.into(),
    ];
    ex.execute(
        "INSERT INTO entitlement (entitlement_id, employer_id, order_no, plan_id, action, quota, used,
                                  status, valid_from, valid_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        &values,
    )
    .await?;
    let granted = row.quota.unwrap_or(0);
    audit(
        ex,
        &row.entitlement_id,
        AuditKind::Granted,
        None,
        granted,
        now_ms,
    )
    .await
}

/// An entitlement by id.
pub async fn get(ex: &mut Exec<'_>, entitlement_id: &str) -> Result<EntitlementRow, sqlx::Error> {
    let sql = select_rows!("WHERE entitlement_id = $1");
    select(ex, sql, &[entitlement_id.into()])
        .await?
        .pop()
        .ok_or(sqlx::Error::RowNotFound)
}

/// An order's active entitlements, by id.
pub async fn active_of_order(
    ex: &mut Exec<'_>,
    order_no: &OrderNo,
) -> Result<Vec<EntitlementRow>, sqlx::Error> {
    let sql = select_rows!("WHERE order_no = $1 AND status = 'active' ORDER BY entitlement_id");
    select(ex, sql, &[order_no.as_str().into()]).await
}

/// An employer's active entitlements, by id.
pub async fn active_of_employer(
    ex: &mut Exec<'_>,
    employer: &EmployerId,
) -> Result<Vec<EntitlementRow>, sqlx::Error> {
    let sql = select_rows!("WHERE employer_id = $1 AND status = 'active' ORDER BY entitlement_id");
    select(ex, sql, &[employer.as_str().into()]).await
}

/// Every entitlement of an employer, oldest first: what has committed.
pub async fn of_employer(
    db: &Db,
    employer: &EmployerId,
) -> Result<Vec<EntitlementRow>, sqlx::Error> {
    let sql = select_rows!("WHERE employer_id = $1 ORDER BY valid_from, entitlement_id");
    let rows = super::sql::query(sql, &[employer.as_str().into()])
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Every entitlement an order granted, by action (the console's order page).
pub async fn of_order(db: &Db, order_no: &OrderNo) -> Result<Vec<EntitlementRow>, sqlx::Error> {
    let sql = select_rows!("WHERE order_no = $1 ORDER BY action, entitlement_id");
    db.lookup_all(sql, &[order_no.as_str().into()], |r| from_row(r))
        .await
}

/// An active entitlement's quota and end set to `quota` and `valid_until` (a refund's
/// reduction). False when it was no longer active.
pub async fn reduce(
    ex: &mut Exec<'_>,
    entitlement_id: &str,
    quota: Option<i64>,
    valid_until: DateTime<Utc>,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let values = [
        quota.into(),
        to_millis(valid_until).into(),
        now_ms.into(),
        entitlement_id.into(),
    ];
    let n = ex
        .execute(
            "UPDATE entitlement SET quota = $1, valid_until = $2, updated_at = $3
             WHERE entitlement_id = $4 AND status = 'active'",
            &values,
        )
        .await?;
    Ok(n == 1)
}

/// active → revoked. False when it was no longer active.
pub async fn revoke(
    ex: &mut Exec<'_>,
    entitlement_id: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = ex
        .execute(
            "UPDATE entitlement SET status = 'revoked', updated_at = $1
             WHERE entitlement_id = $2 AND status = 'active'",
            &[now_ms.into(), entitlement_id.into()],
        )
        .await?;
    Ok(n == 1)
}

/// An entitlement the expiry job just marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRow {
    pub entitlement_id: String,
    pub order_no: OrderNo,
    pub employer_id: EmployerId,
}

/// Up to `batch` active entitlements past `valid_until` → expired (earliest end first).
pub async fn expire_due(
    ex: &mut Exec<'_>,
    now_ms: i64,
    batch: i64,
) -> Result<Vec<ExpiredRow>, sqlx::Error> {
    let rows = ex
        .all(
            "UPDATE entitlement SET status = 'expired', updated_at = $1
             WHERE entitlement_id IN (
                 SELECT entitlement_id FROM entitlement
                 WHERE status = 'active' AND valid_until <= $1
                 ORDER BY valid_until LIMIT $2)
               AND status = 'active'
             RETURNING entitlement_id, order_no, employer_id",
            &[now_ms.into(), batch.into()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ExpiredRow {
                entitlement_id: r.column("entitlement_id")?,
                order_no: parsed("order_no", &r.column::<String>("order_no")?, OrderNo::parse)?,
                employer_id: parsed(
                    "employer_id",
                    &r.column::<String>("employer_id")?,
                    EmployerId::parse,
                )?,
            })
        })
        .collect()
}

// The statements of an access check bind `$1`… in the order their docs give.

/// The résumé is covered by a still-valid entitlement of the employer ($1 employer, $2 action,
/// $3 now, $4 résumé): the entitlement that expires first.
const COVERED: &str = "SELECT e.entitlement_id, e.quota, e.used FROM entitlement e
     JOIN resume_access a ON a.entitlement_id = e.entitlement_id
     WHERE e.employer_id = $1 AND e.action = $2 AND e.status = 'active' AND e.valid_until > $3
       AND a.resume_id = $4 AND a.action = $2
     ORDER BY e.valid_until LIMIT 1";

/// One unit taken from the active entitlement that expires first with quota left — unless the
/// résumé is covered meanwhile ($1 now, $2 employer, $3 action, $4 résumé). The conditional
/// UPDATE is the guard: two concurrent requests can never both take the last unit.
const TAKE_UNIT: &str = "UPDATE entitlement SET used = used + 1, updated_at = $1
     WHERE entitlement_id = (SELECT entitlement_id FROM entitlement
                             WHERE employer_id = $2 AND action = $3 AND status = 'active'
                               AND valid_until > $1 AND (quota IS NULL OR used < quota)
                             ORDER BY valid_until, entitlement_id LIMIT 1)
       AND status = 'active' AND (quota IS NULL OR used < quota)
       AND NOT EXISTS (SELECT 1 FROM entitlement e
                       JOIN resume_access a ON a.entitlement_id = e.entitlement_id
                       WHERE e.employer_id = $2 AND e.action = $3 AND e.status = 'active'
                         AND e.valid_until > $1 AND a.resume_id = $4 AND a.action = $3)
     RETURNING entitlement_id, quota, used";

/// Some active entitlement still has quota ($1 employer, $2 action, $3 now).
const QUOTA_LEFT: &str = "SELECT entitlement_id FROM entitlement
     WHERE employer_id = $1 AND action = $2 AND status = 'active' AND valid_until > $3
       AND (quota IS NULL OR used < quota)
     LIMIT 1";

/// The latest `valid_until` of each status among the employer's entitlements of the action,
/// revoked ones included ($1 employer, $2 action): what a refused access check reads to say
/// why (the rule is `entitlements::refusal`). At most one row per status.
const LATEST_BY_STATUS: &str = "SELECT status, MAX(valid_until) AS valid_until FROM entitlement
     WHERE employer_id = $1 AND action = $2
     GROUP BY status";

/// One access check: who asks for what, of which résumé, when. Its statements' values are
/// bound from here, once.
#[derive(Debug, Clone)]
pub struct AccessAsk {
    pub employer: EmployerId,
    pub resume_id: String,
    pub action: Action,
    pub now_ms: i64,
}

impl AccessAsk {
    /// [`COVERED`]'s values: the lookup and the transaction bind the same list.
    fn covered_values(&self) -> [Value; 4] {
        [
            self.employer.as_str().into(),
            self.action.as_str().into(),
            self.now_ms.into(),
            self.resume_id.as_str().into(),
        ]
    }
}

/// An entitlement's id and use, as an access check answers from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub entitlement_id: String,
    pub quota: Option<i64>,
    pub used: i64,
}

fn use_of(r: &impl Columns) -> Result<Use, sqlx::Error> {
    Ok(Use {
        entitlement_id: r.column("entitlement_id")?,
        quota: r.column("quota")?,
        used: r.column("used")?,
    })
}

/// The still-valid entitlement that already covers the résumé (it expires first), if any: a
/// lookup by key, of what has committed.
pub async fn covered(db: &Db, ask: &AccessAsk) -> Result<Option<Use>, sqlx::Error> {
    db.lookup_optional(COVERED, &ask.covered_values(), |r| use_of(r))
        .await
}

/// [`covered`] inside a transaction.
pub async fn covered_in(ex: &mut Exec<'_>, ask: &AccessAsk) -> Result<Option<Use>, sqlx::Error> {
    ex.optional(COVERED, &ask.covered_values())
        .await?
        .map(|r| use_of(&r))
        .transpose()
}

/// One unit taken (see [`TAKE_UNIT`]); None when none was: covered meanwhile, no quota left,
/// or (PostgreSQL) the chosen one taken concurrently.
pub async fn take_unit(ex: &mut Exec<'_>, ask: &AccessAsk) -> Result<Option<Use>, sqlx::Error> {
    let values = [
        ask.now_ms.into(),
        ask.employer.as_str().into(),
        ask.action.as_str().into(),
        ask.resume_id.as_str().into(),
    ];
    ex.optional(TAKE_UNIT, &values)
        .await?
        .map(|r| use_of(&r))
        .transpose()
}

/// Some active entitlement of the employer still has quota for the action.
pub async fn quota_left(ex: &mut Exec<'_>, ask: &AccessAsk) -> Result<bool, sqlx::Error> {
    let values = [
        ask.employer.as_str().into(),
        ask.action.as_str().into(),
        ask.now_ms.into(),
    ];
    Ok(ex.optional(QUOTA_LEFT, &values).await?.is_some())
}

/// For each status the employer's entitlements of the action have, the latest `valid_until`
/// among them (see [`LATEST_BY_STATUS`]); empty when the employer never held one.
pub async fn latest_by_status(
    ex: &mut Exec<'_>,
    ask: &AccessAsk,
) -> Result<Vec<(EntitlementStatus, DateTime<Utc>)>, sqlx::Error> {
    let values = [ask.employer.as_str().into(), ask.action.as_str().into()];
    ex.all(LATEST_BY_STATUS, &values)
        .await?
        .iter()
        .map(|r| {
            Ok((
                parsed(
                    "status",
                    &r.column::<String>("status")?,
                    EntitlementStatus::parse,
                )?,
                time_of("valid_until", r.column("valid_until")?)?,
            ))
        })
        .collect()
}

/// The résumé is now covered by the entitlement. A concurrent first access of the same résumé
/// that committed first makes this a unique violation.
pub async fn record_access(
    ex: &mut Exec<'_>,
    entitlement_id: &str,
    ask: &AccessAsk,
) -> Result<(), sqlx::Error> {
    let values = [
        entitlement_id.into(),
        ask.resume_id.as_str().into(),
        ask.action.as_str().into(),
        ask.now_ms.into(),
    ];
    ex.execute(
        "INSERT INTO resume_access (entitlement_id, resume_id, action, created_at) VALUES ($1, $2, $3, $4)",
        &values,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One stored entitlement row with `status` and `valid_until` as given, decoded.
    fn decoded(status: &str, valid_until: i64) -> Result<EntitlementRow, sqlx::Error> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let row = format!(
            "SELECT 'ent_1' AS entitlement_id, 'emp_1' AS employer_id,
                    '{}' AS order_no, 'resume-view-30d' AS plan_id, 'view' AS action,
                    NULL AS quota, 0 AS used, '{status}' AS status, 0 AS valid_from,
                    {valid_until} AS valid_until",
            "0".repeat(26)
        );
        conn.query_row(&row, [], |r| Ok(from_row(r))).unwrap()
    }

    #[test]
    fn a_stored_row_decodes_into_its_types() {
        let row = decoded("active", 86_400_000).unwrap();
        assert_eq!(row.status, EntitlementStatus::Active);
        assert_eq!(row.action, Action::View);
        assert_eq!(to_millis(row.valid_until), 86_400_000);
    }

    #[test]
    fn an_unknown_status_or_an_impossible_time_is_a_decode_error_naming_the_column() {
        let err = decoded("suspended", 0).unwrap_err().to_string();
        assert!(err.contains("status"), "{err}");
        let err = decoded("active", i64::MAX).unwrap_err().to_string();
        assert!(err.contains("valid_until"), "{err}");
    }
}
