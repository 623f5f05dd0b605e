//! Résumé-access entitlements: granted at settlement, consumed by the résumé service's
//! access checks, every change written to the append-only audit table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::{rfc3339_beijing_millis, to_millis};
use crate::domain::{Action, EmployerId, Fen, Grant, OrderNo};
use crate::store::Columns;
use crate::store::exec::Exec;
use crate::store::{Db, Tx};

#[derive(Debug, Clone, Serialize)]
pub struct Entitlement {
    pub entitlement_id: String,
    pub order_no: String,
    pub plan: String,
    pub action: String,
    pub quota: Option<i64>,
    pub used: i64,
    pub remaining: Option<i64>,
    pub status: String,
    pub valid_from: String,
    pub valid_until: String,
}

impl Entitlement {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

const COLUMNS: &str = "entitlement_id, employer_id, order_no, plan_id, action, quota, used, status, valid_from, valid_until";

/// `status` as the caller sees it: an active row past `valid_until` is already expired,
/// whether or not the hourly job has marked it yet.
fn from_row(r: &AnyRow, now_ms: i64) -> Result<Entitlement, sqlx::Error> {
    let quota: Option<i64> = r.try_get("quota")?;
    let used: i64 = r.try_get("used")?;
    let valid_until: i64 = r.try_get("valid_until")?;
    let mut status: String = r.try_get("status")?;
    if status == "active" && valid_until <= now_ms {
        status = "expired".to_owned();
    }
    let e = Entitlement {
        entitlement_id: r.try_get("entitlement_id")?,
        order_no: r.try_get("order_no")?,
        plan: r.try_get("plan_id")?,
        action: r.try_get("action")?,
        quota,
        used,
        remaining: quota.map(|q| (q - used).max(0)),
        status,
        valid_from: rfc3339_beijing_millis(r.try_get("valid_from")?),
        valid_until: rfc3339_beijing_millis(valid_until),
    };
    Ok(e)
}

/// Appends one line to an entitlement's audit trail.
const AUDIT: &str =
    "INSERT INTO entitlement_audit (entitlement_id, kind, resume_id, quota_delta, created_at)
     VALUES ($1, $2, $3, $4, $5)";

async fn audit(
    tx: &mut Tx,
    entitlement_id: &str,
    kind: &str,
    resume_id: Option<&str>,
    quota_delta: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    audit_in(
        &mut Exec::Sqlx(tx),
        entitlement_id,
        kind,
        resume_id,
        quota_delta,
        now_ms,
    )
    .await
}

async fn audit_in(
    ex: &mut Exec<'_>,
    entitlement_id: &str,
    kind: &str,
    resume_id: Option<&str>,
    quota_delta: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let values = [
        entitlement_id.into(),
        kind.into(),
        resume_id.map(str::to_owned).into(),
        quota_delta.into(),
        now_ms.into(),
    ];
    ex.execute(AUDIT, &values).await?;
    Ok(())
}

/// Grants an order's entitlements inside the settlement transaction. The unique
/// (order_no, action) constraint makes a second grant for one order impossible.
pub async fn grant(
    ex: &mut Exec<'_>,
    employer_id: &EmployerId,
    order_no: &OrderNo,
    plan_id: &str,
    grants: &[Grant],
    now: DateTime<Utc>,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let now_ms = to_millis(now);
    let mut out = Vec::new();
    for g in grants {
        let id = crate::domain::ids::prefixed_id("ent");
        let until = to_millis(now + chrono::Duration::days(g.days));
        let values = [
            id.as_str().into(),
            employer_id.as_str().into(),
            order_no.as_str().into(),
            plan_id.into(),
            g.action.as_str().into(),
            g.quota.into(),
            now_ms.into(),
            until.into(),
        ];
        ex.execute(
            "INSERT INTO entitlement (entitlement_id, employer_id, order_no, plan_id, action, quota, used,
                                      status, valid_from, valid_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 0, 'active', $7, $8, $7, $7)",
            &values,
        )
        .await?;
        audit_in(ex, &id, "granted", None, g.quota.unwrap_or(0), now_ms).await?;
        out.push(Entitlement {
            entitlement_id: id,
            order_no: order_no.to_string(),
            plan: plan_id.to_owned(),
            action: g.action.as_str().to_owned(),
            quota: g.quota,
            used: 0,
            remaining: g.quota,
            status: "active".to_owned(),
            valid_from: rfc3339_beijing_millis(now_ms),
            valid_until: rfc3339_beijing_millis(until),
        });
    }
    Ok(out)
}

/// Marks active entitlements past `valid_until` as `expired` (the hourly job), each with its
/// audit row and an `entitlement.expired` event, in batches of `batch`. Answers how many.
/// Access checks never depended on this: they compare `valid_until` themselves.
pub async fn expire_due(db: &Db, now: DateTime<Utc>, batch: i64) -> Result<u64, sqlx::Error> {
    let now_ms = to_millis(now);
    let mut expired = 0;
    loop {
        let mut tx = db.begin_write().await?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "UPDATE entitlement SET status = 'expired', updated_at = $1
             WHERE entitlement_id IN (
                 SELECT entitlement_id FROM entitlement
                 WHERE status = 'active' AND valid_until <= $1
                 ORDER BY valid_until LIMIT $2)
               AND status = 'active'
             RETURNING entitlement_id, order_no, employer_id",
        )
        .bind(now_ms)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        for (entitlement_id, order_no, employer_id) in &rows {
            audit(&mut tx, entitlement_id, "expired", None, 0, now_ms).await?;
            let data = serde_json::json!({
                "entitlement_id": entitlement_id,
                "employer_id": employer_id,
                "order_no": order_no,
            });
            crate::store::events::append(
                &mut tx,
                "entitlement.expired",
                Some(order_no),
                &data,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        expired += rows.len() as u64;
        if (rows.len() as i64) < batch {
            return Ok(expired);
        }
    }
}

/// How an entitlement changed because its order's money went (partly) back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundEffect {
    Revoked,
    /// The quota (quota grants) or the end of validity (unlimited grants) became smaller.
    Reduced,
}

/// What is left of a grant after refunds totalling `refunded` of a payment `paid`
/// (DESIGN.md §5): a quota grant keeps `ceil(quota × (1 − R/P))` but never less than `used`;
/// an unlimited grant keeps `valid_until` shortened by the share R/P of its term, never
/// earlier than `now`. Computed from the grant as bought, so refunds in any number and order
/// give the same result for the same total. None when R ≥ P: the grant is revoked.
pub fn left_after_refunds(
    grant: &Grant,
    valid_from_ms: i64,
    used: i64,
    paid: Fen,
    refunded: Fen,
    now_ms: i64,
) -> Option<(Option<i64>, i64)> {
    let (p, r) = (i128::from(paid.get()), i128::from(refunded.get()));
    if p <= 0 || r >= p {
        return None;
    }
    let kept = p - r;
    let term_ms = i128::from(grant.days) * 86_400_000;
    match grant.quota {
        Some(quota) => {
            // ceil(quota × kept / p) in integers.
            let q = (i128::from(quota) * kept + p - 1) / p;
            let q = i64::try_from(q).unwrap_or(quota).max(used);
            Some((Some(q), valid_from_ms + grant.days * 86_400_000))
        }
        None => {
            let until = i128::from(valid_from_ms) + term_ms * kept / p;
            let until = i64::try_from(until).unwrap_or(i64::MAX).max(now_ms);
            Some((None, until))
        }
    }
}

/// Makes the order's active entitlements follow its refunds, inside the refund's settlement
/// transaction: revoked once everything went back, otherwise reduced per
/// [`left_after_refunds`] (never enlarged). Each change is audited and gets its
/// `entitlement.revoked` / `entitlement.reduced` event. Access checks read the same rows, so
/// they see the change as soon as this commits.
pub async fn follow_refunds(
    tx: &mut Tx,
    order_no: &OrderNo,
    grants: &[Grant],
    paid: Fen,
    refunded: Fen,
    now: DateTime<Utc>,
) -> Result<Vec<(Entitlement, RefundEffect)>, sqlx::Error> {
    let now_ms = to_millis(now);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM entitlement WHERE order_no = $1 AND status = 'active'
         ORDER BY entitlement_id"
    )))
    .bind(order_no.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut changed = Vec::new();
    for r in &rows {
        let id: String = r.try_get("entitlement_id")?;
        let employer_id: String = r.try_get("employer_id")?;
        let action: String = r.try_get("action")?;
        let quota: Option<i64> = r.try_get("quota")?;
        let used: i64 = r.try_get("used")?;
        let valid_from: i64 = r.try_get("valid_from")?;
        let valid_until: i64 = r.try_get("valid_until")?;
        let grant = grants
            .iter()
            .find(|g| g.action.as_str() == action)
            .ok_or_else(|| {
                crate::store::orders::corrupt("grants_json", "no grant for an entitlement")
            })?;
        let (effect, detail) =
            match left_after_refunds(grant, valid_from, used, paid, refunded, now_ms) {
                None => {
                    revoke(tx, &id, quota, used, now_ms).await?;
                    (RefundEffect::Revoked, "revoked")
                }
                Some((new_quota, new_until)) => {
                    let smaller_quota = matches!((quota, new_quota), (Some(q), Some(n)) if n < q);
                    let earlier = new_until < valid_until;
                    if !smaller_quota && !earlier {
                        continue;
                    }
                    let quota_after = if smaller_quota { new_quota } else { quota };
                    let until_after = if earlier { new_until } else { valid_until };
                    sqlx::query(
                        "UPDATE entitlement SET quota = $1, valid_until = $2, updated_at = $3
                     WHERE entitlement_id = $4 AND status = 'active'",
                    )
                    .bind(quota_after)
                    .bind(until_after)
                    .bind(now_ms)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                    let delta = match (quota, quota_after) {
                        (Some(before), Some(after)) => after - before,
                        _ => 0,
                    };
                    audit(tx, &id, "reduced", None, delta, now_ms).await?;
                    (RefundEffect::Reduced, "reduced")
                }
            };
        let now_row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM entitlement WHERE entitlement_id = $1"
        )))
        .bind(&id)
        .fetch_one(&mut **tx)
        .await?;
        let ent = from_row(&now_row, now_ms)?;
        let mut data = ent.to_json();
        data["employer_id"] = employer_id.into();
        data["reason"] = "refunded".into();
        crate::store::events::append(
            tx,
            &format!("entitlement.{detail}"),
            Some(order_no.as_str()),
            &data,
            now_ms,
        )
        .await?;
        changed.push((ent, effect));
    }
    Ok(changed)
}

/// active → revoked, audited with what was left of the quota: the one revocation both a full
/// refund and an erasure go through.
async fn revoke(
    tx: &mut Tx,
    entitlement_id: &str,
    quota: Option<i64>,
    used: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE entitlement SET status = 'revoked', updated_at = $1
         WHERE entitlement_id = $2 AND status = 'active'",
    )
    .bind(now_ms)
    .bind(entitlement_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 1 {
        let left = quota.map(|q| q - used).unwrap_or(0);
        audit(tx, entitlement_id, "revoked", None, -left, now_ms).await?;
    }
    Ok(n == 1)
}

/// An erased employer's active entitlements revoked inside the erasure's transaction, each
/// audited with an `entitlement.revoked` event (reason `account_deleted`) that already names
/// the pseudonym, never the id. Answers how many.
pub async fn revoke_for_erasure(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let now_ms = to_millis(now);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM entitlement WHERE employer_id = $1 AND status = 'active'
         ORDER BY entitlement_id"
    )))
    .bind(employer.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut revoked = 0;
    for r in &rows {
        let id: String = r.try_get("entitlement_id")?;
        if !revoke(tx, &id, r.try_get("quota")?, r.try_get("used")?, now_ms).await? {
            continue;
        }
        let mut ent = from_row(r, now_ms)?;
        ent.status = "revoked".to_owned();
        let mut data = ent.to_json();
        data["employer_id"] = pseudonym.as_str().into();
        data["reason"] = crate::privacy::ACCOUNT_DELETED.into();
        crate::store::events::append(
            tx,
            "entitlement.revoked",
            Some(&ent.order_no),
            &data,
            now_ms,
        )
        .await?;
        revoked += 1;
    }
    Ok(revoked)
}

pub async fn list(
    db: &Db,
    employer: &EmployerId,
    now: DateTime<Utc>,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM entitlement WHERE employer_id = $1 ORDER BY valid_from, entitlement_id"
    )))
    .bind(employer.as_str())
    .fetch_all(db.reader())
    .await?;
    let now_ms = to_millis(now);
    rows.iter().map(|r| from_row(r, now_ms)).collect()
}

#[cfg(test)]
mod refund_rule_tests {
    use super::*;
    use crate::domain::Action;

    const DAY: i64 = 86_400_000;

    fn fen(v: i64) -> Fen {
        Fen::new(v).unwrap()
    }

    #[test]
    fn a_quota_keeps_the_unrefunded_share_rounded_up_but_never_below_used() {
        let g = Grant {
            action: Action::Download,
            quota: Some(50),
            days: 90,
        };
        // 50.00 of 199.00 back: 50 × 149/199 = 37.4 → 38.
        assert_eq!(
            left_after_refunds(&g, 0, 0, fen(19900), fen(5000), 0),
            Some((Some(38), 90 * DAY))
        );
        // Already used 45: stays 45.
        assert_eq!(
            left_after_refunds(&g, 0, 45, fen(19900), fen(5000), 0),
            Some((Some(45), 90 * DAY))
        );
        // One fen back keeps everything (ceil).
        assert_eq!(
            left_after_refunds(&g, 0, 0, fen(19900), fen(1), 0),
            Some((Some(50), 90 * DAY))
        );
        // Everything back: revoked.
        assert_eq!(
            left_after_refunds(&g, 0, 0, fen(19900), fen(19900), 0),
            None
        );
    }

    #[test]
    fn an_unlimited_grant_is_shortened_by_the_refunded_share_but_not_before_now() {
        let g = Grant {
            action: Action::View,
            quota: None,
            days: 30,
        };
        // Half back: 15 of 30 days.
        assert_eq!(
            left_after_refunds(&g, 0, 0, fen(9900), fen(4950), 0),
            Some((None, 15 * DAY))
        );
        // Refunded on day 20: the 15 days are gone, so it ends now.
        assert_eq!(
            left_after_refunds(&g, 0, 0, fen(9900), fen(4950), 20 * DAY),
            Some((None, 20 * DAY))
        );
    }
}

// The statements of an access check: the inline lookup (SQLite), the pooled one and the
// transaction (`access_in`, on either executor) bind `$1`… in order.

/// The résumé is covered by a still-valid entitlement of the employer ($1 employer, $2 action,
/// $3 now, $4 résumé): the entitlement that expires first.
const COVERED: &str = "SELECT e.entitlement_id, e.quota, e.used FROM entitlement e
     JOIN resume_access a ON a.entitlement_id = e.entitlement_id
     WHERE e.employer_id = $1 AND e.action = $2 AND e.status = 'active' AND e.valid_until > $3
       AND a.resume_id = $4 AND a.action = $2
     ORDER BY e.valid_until LIMIT 1";

/// One unit taken from the active entitlement that expires first with quota left — unless the
/// résumé is covered meanwhile ($1 now, $2 employer, $3 action, $4 now, $5 résumé). The
/// conditional UPDATE is the guard: two concurrent requests can never both take the last unit.
const TAKE_UNIT: &str = "UPDATE entitlement SET used = used + 1, updated_at = $1
     WHERE entitlement_id = (SELECT entitlement_id FROM entitlement
                             WHERE employer_id = $2 AND action = $3 AND status = 'active'
                               AND valid_until > $4 AND (quota IS NULL OR used < quota)
                             ORDER BY valid_until, entitlement_id LIMIT 1)
       AND status = 'active' AND (quota IS NULL OR used < quota)
       AND NOT EXISTS (SELECT 1 FROM entitlement e
                       JOIN resume_access a ON a.entitlement_id = e.entitlement_id
                       WHERE e.employer_id = $2 AND e.action = $3 AND e.status = 'active'
                         AND e.valid_until > $4 AND a.resume_id = $5 AND a.action = $3)
     RETURNING entitlement_id, quota, used";

/// Some active entitlement still has quota ($1 employer, $2 action, $3 now).
const QUOTA_LEFT: &str = "SELECT entitlement_id FROM entitlement
     WHERE employer_id = $1 AND action = $2 AND status = 'active' AND valid_until > $3
       AND (quota IS NULL OR used < quota)
     LIMIT 1";

/// The résumé is now covered by the entitlement ($1 entitlement, $2 résumé, $3 action, $4 now).
const RECORD_ACCESS: &str = "INSERT INTO resume_access (entitlement_id, resume_id, action, created_at) VALUES ($1, $2, $3, $4)";

#[derive(Debug, Clone, Serialize)]
pub struct AccessGranted {
    pub granted: bool,
    pub entitlement_id: String,
    pub remaining: Option<i64>,
}

/// "May this employer view/download this résumé?" Consumes one unit from the active
/// entitlement that expires first; the same résumé and action again under an entitlement
/// that already covers it consumes nothing. None = no entitlement.
///
/// The repeat (the résumé service asks on every page an employer opens) is answered from a
/// read-only query that never waits for the write lock; only a first access writes. A
/// revocation or expiry that committed is seen at once: the read is a fresh snapshot and
/// checks `status` and `valid_until` itself.
pub async fn access(
    db: &Db,
    employer: &EmployerId,
    resume_id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<Option<AccessGranted>, sqlx::Error> {
    let now_ms = to_millis(now);
    let (who, act) = (employer.as_str(), action.as_str());
    let cover = db
        .lookup(
            |conn| {
                crate::store::inline::query_optional(
                    conn,
                    COVERED,
                    &[&who, &act, &now_ms, &resume_id],
                    |r| granted_from(r),
                )
            },
            |pool| covered(pool, employer, resume_id, action, now_ms),
        )
        .await?;
    if let Some(granted) = cover {
        return Ok(Some(granted));
    }
    let first_access = || async {
        match db.batch_writer() {
            // SQLite: the whole transaction in one hand-over to the batching writer.
            Some(writer) => {
                let (employer, resume_id) = (employer.as_str().to_owned(), resume_id.to_owned());
                writer
                    .write_with(move |conn| {
                        crate::store::exec::ready(access_in(
                            &mut Exec::Sqlite(conn),
                            &employer,
                            &resume_id,
                            action,
                            now_ms,
                        ))
                    })
                    .await
            }
            None => {
                let mut tx = db.begin_write().await?;
                let answer = access_in(
                    &mut Exec::Sqlx(&mut tx),
                    employer.as_str(),
                    resume_id,
                    action,
                    now_ms,
                )
                .await?;
                tx.commit().await?;
                Ok(answer)
            }
        }
    };
    match first_access().await {
        // Two concurrent first requests for one résumé: the loser's insert hits the primary
        // key; run again and it finds the résumé covered, consuming nothing.
        Err(e) if crate::store::is_unique_violation(&e) => first_access().await,
        other => other,
    }
}

/// What a covered or granted access answers, from the entitlement's id, quota and use.
fn granted(entitlement_id: String, quota: Option<i64>, used: i64) -> AccessGranted {
    AccessGranted {
        granted: true,
        entitlement_id,
        remaining: quota.map(|q| (q - used).max(0)),
    }
}

/// A covering entitlement's row (`entitlement_id`, `quota`, `used`) as the access answer.
fn granted_from(r: &impl crate::store::Columns) -> Result<AccessGranted, sqlx::Error> {
    Ok(granted(
        r.column("entitlement_id")?,
        r.column("quota")?,
        r.column("used")?,
    ))
}

/// The résumé is already covered by a still-valid entitlement of the employer: free.
async fn covered<'e, E>(
    exec: E,
    employer: &EmployerId,
    resume_id: &str,
    action: Action,
    now_ms: i64,
) -> Result<Option<AccessGranted>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(COVERED)
        .bind(employer.as_str())
        .bind(action.as_str())
        .bind(now_ms)
        .bind(resume_id)
        .fetch_optional(exec)
        .await?;
    row.as_ref().map(granted_from).transpose()
}

/// The first access's transaction, written once (see [`crate::store::exec`]): one unit taken
/// from the entitlement that expires first, the access row, the audit line.
async fn access_in(
    ex: &mut Exec<'_>,
    employer: &str,
    resume_id: &str,
    action: Action,
    now_ms: i64,
) -> Result<Option<AccessGranted>, sqlx::Error> {
    let action = action.as_str();
    // One statement takes a unit from the active entitlement that expires first with quota
    // left — unless the résumé is covered meanwhile (a concurrent first access of it
    // committed). The conditional UPDATE is the guard: two concurrent requests can never both
    // take the last unit.
    loop {
        let take = [
            now_ms.into(),
            employer.into(),
            action.into(),
            now_ms.into(),
            resume_id.into(),
        ];
        let Some(taken) = ex.optional(TAKE_UNIT, &take).await? else {
            // Covered meanwhile: free.
            let cover = [
                employer.into(),
                action.into(),
                now_ms.into(),
                resume_id.into(),
            ];
            if let Some(row) = ex.optional(COVERED, &cover).await? {
                return Ok(Some(granted_from(&row)?));
            }
            // No entitlement with quota left: refused. Otherwise the chosen one was taken
            // by a concurrent request between the choice and the update (PostgreSQL): again.
            let left = [employer.into(), action.into(), now_ms.into()];
            if ex.optional(QUOTA_LEFT, &left).await?.is_none() {
                return Ok(None);
            }
            continue;
        };
        let id: String = taken.column("entitlement_id")?;
        let record = [
            id.as_str().into(),
            resume_id.into(),
            action.into(),
            now_ms.into(),
        ];
        ex.execute(RECORD_ACCESS, &record).await?;
        audit_in(ex, &id, "consumed", Some(resume_id), -1, now_ms).await?;
        return Ok(Some(granted(
            id,
            taken.column("quota")?,
            taken.column("used")?,
        )));
    }
}
