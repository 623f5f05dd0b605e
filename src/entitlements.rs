//! Résumé-access entitlements (DESIGN.md §5): granted at settlement, consumed by the résumé
//! service's access checks, reduced or revoked by refunds and erasure, every change written to
//! the append-only audit table. The rules live here; every statement is in
//! [`crate::store::entitlements`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{rfc3339_beijing, to_millis};
use crate::domain::status::EntitlementStatus;
use crate::domain::{Action, EmployerId, Fen, Grant, OrderNo};
use crate::store::entitlements::{self as rows, AccessAsk, AuditKind, EntitlementRow, Use};
use crate::store::exec::Exec;
use crate::store::{Db, Tx, events, is_unique_violation};

/// An entitlement as the API and the events show it, at a moment: `status` is what a caller
/// sees then (an active row past `valid_until` is already expired).
#[derive(Debug, Clone, Serialize)]
pub struct Entitlement {
    pub entitlement_id: String,
    pub order_no: OrderNo,
    pub plan: String,
    pub action: Action,
    pub quota: Option<i64>,
    pub used: i64,
    pub remaining: Option<i64>,
    pub status: EntitlementStatus,
    pub valid_from: String,
    pub valid_until: String,
}

impl Entitlement {
    /// `row` as seen at `now`.
    pub fn at(row: &EntitlementRow, now: DateTime<Utc>) -> Entitlement {
        Entitlement {
            entitlement_id: row.entitlement_id.clone(),
            order_no: row.order_no.clone(),
            plan: row.plan_id.clone(),
            action: row.action,
            quota: row.quota,
            used: row.used,
            remaining: remaining(row.quota, row.used),
            status: row.status.at(to_millis(row.valid_until), to_millis(now)),
            valid_from: rfc3339_beijing(row.valid_from),
            valid_until: rfc3339_beijing(row.valid_until),
        }
    }

    /// The event payload's entitlement fields.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "entitlement_id": self.entitlement_id,
            "order_no": self.order_no,
            "plan": self.plan,
            "action": self.action,
            "quota": self.quota,
            "used": self.used,
            "remaining": self.remaining,
            "status": self.status,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
        })
    }
}

/// What a quota still allows (never below zero); None: unlimited.
fn remaining(quota: Option<i64>, used: i64) -> Option<i64> {
    quota.map(|q| (q - used).max(0))
}

/// Grants an order's entitlements inside the settlement transaction (each with its `granted`
/// audit line). The unique (order_no, action) constraint makes a second grant for one order
/// impossible.
pub async fn grant(
    ex: &mut Exec<'_>,
    employer_id: &EmployerId,
    order_no: &OrderNo,
    plan_id: &str,
    grants: &[Grant],
    now: DateTime<Utc>,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let mut out = Vec::with_capacity(grants.len());
    for g in grants {
        let row = EntitlementRow {
            entitlement_id: crate::domain::ids::prefixed_id("ent"),
            employer_id: employer_id.clone(),
            order_no: order_no.clone(),
            plan_id: plan_id.to_owned(),
            action: g.action,
            quota: g.quota,
            used: 0,
            status: EntitlementStatus::Active,
            valid_from: now,
            valid_until: now + chrono::Duration::days(g.days),
        };
        rows::insert(ex, &row, now).await?;
        // As granted: active, whatever its term.
        let mut granted = Entitlement::at(&row, now);
        granted.status = row.status;
        out.push(granted);
    }
    Ok(out)
}

/// Marks active entitlements past `valid_until` as `expired` (the hourly job), each with its
/// audit row and an `entitlement.expired` event, in transactions of `batch`. Answers how many.
/// Access checks never depended on this: they compare `valid_until` themselves.
pub async fn expire_due(db: &Db, now: DateTime<Utc>, batch: i64) -> Result<u64, sqlx::Error> {
    let now_ms = to_millis(now);
    let mut expired = 0;
    loop {
        let n = db
            .transaction(move |ex| Box::pin(async move { expire_batch(ex, now_ms, batch).await }))
            .await?;
        expired += n as u64;
        if (n as i64) < batch {
            return Ok(expired);
        }
    }
}

/// One transaction of [`expire_due`] (a body of [`Db::transaction`]): answers how many expired.
async fn expire_batch(ex: &mut Exec<'_>, now_ms: i64, batch: i64) -> Result<usize, sqlx::Error> {
    let expired = rows::expire_due(ex, now_ms, batch).await?;
    let mut payloads = Vec::with_capacity(expired.len());
    for row in &expired {
        rows::audit(ex, &row.entitlement_id, AuditKind::Expired, None, 0, now_ms).await?;
        payloads.push(serde_json::json!({
            "entitlement_id": row.entitlement_id,
            "employer_id": row.employer_id,
            "order_no": row.order_no,
        }));
    }
    let appended: Vec<_> = expired
        .iter()
        .zip(&payloads)
        .map(|(row, data)| ("entitlement.expired", Some(row.order_no.as_str()), data))
        .collect();
    events::append_all(ex, &appended, now_ms).await?;
    Ok(expired.len())
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
    let ex = &mut Exec::Sqlx(tx);
    let mut changed = Vec::new();
    for row in rows::active_of_order(ex, order_no).await? {
        let grant = grants
            .iter()
            .find(|g| g.action == row.action)
            .ok_or_else(|| crate::store::corrupt("grants_json", "no grant for an entitlement"))?;
        let Some(effect) = follow_one(ex, &row, grant, paid, refunded, now).await? else {
            continue;
        };
        let ent = Entitlement::at(&rows::get(ex, &row.entitlement_id).await?, now);
        let mut data = ent.to_json();
        data["employer_id"] = row.employer_id.as_str().into();
        data["reason"] = "refunded".into();
        let event = match effect {
            RefundEffect::Revoked => "entitlement.revoked",
            RefundEffect::Reduced => "entitlement.reduced",
        };
        let appended = [(event, Some(order_no.as_str()), &data)];
        events::append_all(ex, &appended, to_millis(now)).await?;
        changed.push((ent, effect));
    }
    Ok(changed)
}

/// What refunds totalling `refunded` of `paid` do to one entitlement (DESIGN.md §5, through
/// [`left_after_refunds`]): the one decision the refund's settlement applies and the console's
/// refund confirmation shows before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefunds {
    Revoke,
    /// The quota (`None`: unlimited) and the end of validity it keeps, at least one smaller.
    Reduce {
        quota: Option<i64>,
        until_ms: i64,
    },
    Unchanged,
}

pub fn after_refunds(
    row: &EntitlementRow,
    grant: &Grant,
    paid: Fen,
    refunded: Fen,
    now_ms: i64,
) -> AfterRefunds {
    let (from_ms, until_ms) = (to_millis(row.valid_from), to_millis(row.valid_until));
    let Some((new_quota, new_until)) =
        left_after_refunds(grant, from_ms, row.used, paid, refunded, now_ms)
    else {
        return AfterRefunds::Revoke;
    };
    let smaller_quota = matches!((row.quota, new_quota), (Some(q), Some(n)) if n < q);
    let earlier = new_until < until_ms;
    if !smaller_quota && !earlier {
        return AfterRefunds::Unchanged;
    }
    AfterRefunds::Reduce {
        quota: if smaller_quota { new_quota } else { row.quota },
        until_ms: if earlier { new_until } else { until_ms },
    }
}

/// One entitlement after its order's refunds: revoked, reduced, or (None) unchanged, audited.
async fn follow_one(
    ex: &mut Exec<'_>,
    row: &EntitlementRow,
    grant: &Grant,
    paid: Fen,
    refunded: Fen,
    now: DateTime<Utc>,
) -> Result<Option<RefundEffect>, sqlx::Error> {
    let now_ms = to_millis(now);
    let (quota_after, until_ms) = match after_refunds(row, grant, paid, refunded, now_ms) {
        AfterRefunds::Unchanged => return Ok(None),
        AfterRefunds::Revoke => {
            revoke(ex, row, now_ms).await?;
            return Ok(Some(RefundEffect::Revoked));
        }
        AfterRefunds::Reduce { quota, until_ms } => (quota, until_ms),
    };
    let until_after = crate::store::time_of("valid_until", until_ms)?;
    rows::reduce(ex, &row.entitlement_id, quota_after, until_after, now_ms).await?;
    let delta = match (row.quota, quota_after) {
        (Some(before), Some(after)) => after - before,
        _ => 0,
    };
    rows::audit(
        ex,
        &row.entitlement_id,
        AuditKind::Reduced,
        None,
        delta,
        now_ms,
    )
    .await?;
    Ok(Some(RefundEffect::Reduced))
}

/// active → revoked, audited with what was left of the quota: the one revocation both a full
/// refund and an erasure go through. False when it was no longer active.
async fn revoke(ex: &mut Exec<'_>, row: &EntitlementRow, now_ms: i64) -> Result<bool, sqlx::Error> {
    if !rows::revoke(ex, &row.entitlement_id, now_ms).await? {
        return Ok(false);
    }
    let left = row.quota.map(|q| q - row.used).unwrap_or(0);
    rows::audit(
        ex,
        &row.entitlement_id,
        AuditKind::Revoked,
        None,
        -left,
        now_ms,
    )
    .await?;
    Ok(true)
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
    let ex = &mut Exec::Sqlx(tx);
    let now_ms = to_millis(now);
    let mut revoked = 0;
    for row in rows::active_of_employer(ex, employer).await? {
        if !revoke(ex, &row, now_ms).await? {
            continue;
        }
        let mut ent = Entitlement::at(&row, now);
        ent.status = EntitlementStatus::Revoked;
        let mut data = ent.to_json();
        data["employer_id"] = pseudonym.as_str().into();
        data["reason"] = crate::domain::reasons::ACCOUNT_DELETED.into();
        let appended = [("entitlement.revoked", Some(row.order_no.as_str()), &data)];
        events::append_all(ex, &appended, now_ms).await?;
        revoked += 1;
    }
    Ok(revoked)
}

/// Every entitlement of the employer, as seen at `now`.
pub async fn list(
    db: &Db,
    employer: &EmployerId,
    now: DateTime<Utc>,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let rows = rows::of_employer(db, employer).await?;
    Ok(rows.iter().map(|row| Entitlement::at(row, now)).collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessGranted {
    pub granted: bool,
    pub entitlement_id: String,
    pub remaining: Option<i64>,
}

impl From<Use> for AccessGranted {
    fn from(u: Use) -> AccessGranted {
        AccessGranted {
            granted: true,
            remaining: remaining(u.quota, u.used),
            entitlement_id: u.entitlement_id,
        }
    }
}

/// Why an access check was refused (DESIGN.md §5); the API answers 403 with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No entitlement of the action within its term, but one that ran out:
    /// `entitlement_expired`.
    Expired,
    /// None ever held, only revoked ones, or the one within its term is used up:
    /// `no_entitlement`.
    NoEntitlement,
}

/// What an access check answered.
#[derive(Debug, Clone)]
pub enum Access {
    Granted(AccessGranted),
    Refused(Refusal),
}

/// The one rule that names a refusal (DESIGN.md §5), from the latest `valid_until` of each
/// status among the employer's entitlements of the action (`latest`), at `now`: one still
/// within its term (active, before `valid_until`) was refused only because its quota is used
/// up, and that wins; else one that ran out (marked `expired`, or active past `valid_until`
/// before the hourly job marked it) makes it `Expired`; else (none, or only revoked ones)
/// `NoEntitlement`.
pub fn refusal(latest: &[(EntitlementStatus, DateTime<Utc>)], now: DateTime<Utc>) -> Refusal {
    let now_ms = to_millis(now);
    let seen: Vec<EntitlementStatus> = latest
        .iter()
        .map(|(status, until)| status.at(to_millis(*until), now_ms))
        .collect();
    if seen.contains(&EntitlementStatus::Active) {
        Refusal::NoEntitlement
    } else if seen.contains(&EntitlementStatus::Expired) {
        Refusal::Expired
    } else {
        Refusal::NoEntitlement
    }
}

/// "May this employer view/download this résumé?" Consumes one unit from the active
/// entitlement that expires first; the same résumé and action again under an entitlement
/// that already covers it consumes nothing. Refused: why, by [`refusal`].
///
/// The repeat (the résumé service asks on every page an employer opens) is answered from a
/// read-only lookup that never waits for the write lock; only a first access writes. A
/// revocation or expiry that committed is seen at once: the read is a fresh snapshot and
/// checks `status` and `valid_until` itself.
pub async fn access(
    db: &Db,
    employer: &EmployerId,
    resume_id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<Access, sqlx::Error> {
    let ask = AccessAsk {
        employer: employer.clone(),
        resume_id: resume_id.to_owned(),
        action,
        now_ms: to_millis(now),
    };
    if let Some(cover) = rows::covered(db, &ask).await? {
        return Ok(Access::Granted(cover.into()));
    }
    let first_access = || {
        let ask = ask.clone();
        db.transaction(move |ex| Box::pin(async move { access_in(ex, &ask, now).await }))
    };
    match first_access().await {
        // Two concurrent first requests for one résumé: the loser's insert hits the primary
        // key; run again and it finds the résumé covered, consuming nothing.
        Err(e) if is_unique_violation(&e) => first_access().await,
        other => other,
    }
}

/// The first access's transaction (a body of [`Db::transaction`]): one unit taken from the
/// entitlement that expires first, the access row, the audit line; or, refused, why.
async fn access_in(
    ex: &mut Exec<'_>,
    ask: &AccessAsk,
    now: DateTime<Utc>,
) -> Result<Access, sqlx::Error> {
    // One statement takes a unit from the active entitlement that expires first with quota
    // left — unless the résumé is covered meanwhile (a concurrent first access of it
    // committed). The conditional UPDATE is the guard: two concurrent requests can never both
    // take the last unit.
    loop {
        let Some(taken) = rows::take_unit(ex, ask).await? else {
            // Covered meanwhile: free.
            if let Some(cover) = rows::covered_in(ex, ask).await? {
                return Ok(Access::Granted(cover.into()));
            }
            // No entitlement with quota left: refused, and why. Otherwise the chosen one was
            // taken by a concurrent request between the choice and the update (PostgreSQL):
            // again.
            if !rows::quota_left(ex, ask).await? {
                let latest = rows::latest_by_status(ex, ask).await?;
                return Ok(Access::Refused(refusal(&latest, now)));
            }
            continue;
        };
        rows::record_access(ex, &taken.entitlement_id, ask).await?;
        let (id, resume) = (&taken.entitlement_id, Some(ask.resume_id.as_str()));
        rows::audit(ex, id, AuditKind::Consumed, resume, -1, ask.now_ms).await?;
        return Ok(Access::Granted(taken.into()));
    }
}

#[cfg(test)]
mod refusal_tests {
    use chrono::TimeZone;

    use super::*;
    use EntitlementStatus::{Active, Expired, Revoked};

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_plan_that_ran_out_is_expired_whether_or_not_the_job_marked_it() {
        let now = at(10);
        assert_eq!(refusal(&[(Expired, at(5))], now), Refusal::Expired);
        assert_eq!(refusal(&[(Active, at(5))], now), Refusal::Expired);
        assert_eq!(
            refusal(&[(Active, now)], now),
            Refusal::Expired,
            "ends at now"
        );
        assert_eq!(
            refusal(&[(Revoked, at(20)), (Expired, at(5))], now),
            Refusal::Expired
        );
    }

    #[test]
    fn none_held_only_revoked_or_a_used_up_plan_in_its_term_is_no_entitlement() {
        let now = at(10);
        assert_eq!(refusal(&[], now), Refusal::NoEntitlement);
        assert_eq!(refusal(&[(Revoked, at(20))], now), Refusal::NoEntitlement);
        assert_eq!(refusal(&[(Revoked, at(5))], now), Refusal::NoEntitlement);
        // Refused while one is within its term: its quota is used up, and that wins.
        assert_eq!(
            refusal(&[(Active, at(20)), (Expired, at(5))], now),
            Refusal::NoEntitlement
        );
    }
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
