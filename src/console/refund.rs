//! A refund from the order page (scope `finance`): the amount and the reason; a confirmation
//! that shows what it does to the entitlements (`50 → 38 downloads`) and carries a fresh token;
//! then the refund, sent once whatever the double-clicks — the token is its Idempotency-Key,
//! claimed as the API claims one, under `console:<name>`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::context::Console;
use super::orders::load;
use super::page::{Failure, Page, frame, time, yuan};
use super::session::{Posted, Viewer};
use crate::clock::to_millis;
use crate::console_users::OneTime;
use crate::domain::status::EntitlementStatus;
use crate::domain::{Actor, Fen, OrderNo, OwnedClaim, Scope};
use crate::entitlements::{AfterRefunds, after_refunds};
use crate::refunds::StartError;
use crate::state::AppState;
use crate::store::idempotency::{self, Claim};
use crate::store::idempotency_keys::Key;
use crate::store::orders::OrderRow;

/// What a refund may still take of `order`, or the reason in words why none.
fn refundable(order: &OrderRow) -> Result<Fen, Failure> {
    let left = order.refundable();
    if !order.status.may_refund() || left == Fen::ZERO {
        return Err(Failure::BadRequest(format!(
            "订单 {} 现在不能退款（{}，可退 {}）。",
            order.order_no,
            order.status.as_str(),
            yuan(left)
        )));
    }
    Ok(left)
}

fn ask_form(order: &OrderRow, csrf: &str, left: Fen, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { "订单金额 " (yuan(order.amount)) "，已退 " (yuan(order.refunded)) "，可退 " strong { (yuan(left)) } "。" }
        form.stack method="post" action=(format!("/console/orders/{}/refund/confirm", order.order_no)) {
            input type="hidden" name="csrf" value=(csrf);
            label { "退款金额（元）" input name="amount" value=(left.to_string()) inputmode="decimal" required; }
            label { "原因（买家可见，不写个人信息）" input name="reason" maxlength="80"; }
            button type="submit" { "下一步" }
        }
    }
}

pub async fn form(
    State(console): State<Console>,
    viewer: Viewer,
    Path(order_no): Path<String>,
) -> Result<Page, Failure> {
    viewer.require(Scope::Finance)?;
    let order = load(&console, &order_no).await?;
    let left = refundable(&order)?;
    let body = ask_form(&order, &viewer.csrf, left, None);
    Ok(frame(
        &format!("退款 {}", order.order_no),
        Some(viewer.nav()),
        body,
    ))
}

#[derive(Deserialize)]
pub struct Ask {
    amount: String,
    #[serde(default)]
    reason: String,
}

/// The amount and reason as the refund takes them, or the reason in words why not.
fn parse(order: &OrderRow, ask: &Ask, left: Fen) -> Result<(Fen, Option<String>), String> {
    let amount =
        Fen::parse_yuan(ask.amount.trim()).map_err(|e| format!("金额“{}”不对：{e}", ask.amount))?;
    if amount == Fen::ZERO || amount > left {
        return Err(format!("金额须大于 0 且不超过可退的 {}。", yuan(left)));
    }
    let reason = (!ask.reason.trim().is_empty()).then(|| ask.reason.trim().to_owned());
    let reason = crate::domain::reasons::refund_reason(reason).map_err(|e| e.to_string())?;
    if reason.as_deref().is_some_and(|r| {
        r.to_lowercase()
            .contains(&order.employer_id.as_str().to_lowercase())
    }) {
        return Err("原因中不能出现雇主 ID。".into());
    }
    Ok((amount, reason))
}

/// The confirmation: what the refund does to each entitlement, nothing sent yet.
pub async fn confirm(
    State(console): State<Console>,
    Path(order_no): Path<String>,
    posted: Posted<Ask>,
) -> Result<Response, Failure> {
    let viewer = &posted.viewer;
    viewer.require(Scope::Finance)?;
    let order = load(&console, &order_no).await?;
    let left = refundable(&order)?;
    let (amount, reason) = match parse(&order, &posted.form, left) {
        Ok(ok) => ok,
        Err(why) => {
            let body = ask_form(&order, &viewer.csrf, left, Some(&why));
            let page = frame(
                &format!("退款 {}", order.order_no),
                Some(viewer.nav()),
                body,
            );
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let effects = effects(&console, &order, amount).await?;
    // A new token each time this page is shown: the refund it confirms is sent once.
    let token = OneTime::generate().0;
    let body = html! {
        p { "将退款 " strong #confirm-amount { (yuan(amount)) } " 到买家原支付账户（订单 " code { (order.order_no) } "）。" }
        @if let Some(r) = &reason { p { "原因：" (r) } }
        h2 { "对权益的影响" }
        @if effects.is_empty() { p { "此订单没有生效的权益。" } } @else {
            ul #effects { @for line in &effects { li { (line) } } }
        }
        form.stack method="post" action=(format!("/console/orders/{}/refund", order.order_no)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="token" value=(token);
            input type="hidden" name="amount" value=(amount.to_string());
            input type="hidden" name="reason" value=(reason.as_deref().unwrap_or(""));
            button.danger type="submit" { "确认退款 " (yuan(amount)) }
        }
        p { a href=(format!("/console/orders/{}", order.order_no)) { "取消" } }
    };
    Ok(frame(
        &format!("确认退款 {}", order.order_no),
        Some(viewer.nav()),
        body,
    )
    .into_response())
}

/// Each active entitlement's change, in words: `download 50 → 38 次`, an end brought
/// forward, or revoked.
async fn effects(console: &Console, order: &OrderRow, amount: Fen) -> Result<Vec<String>, Failure> {
    let refunded = order
        .refunded
        .checked_add(order.refund_pending)
        .and_then(|r| r.checked_add(amount))
        .ok_or_else(|| Failure::internal(anyhow::anyhow!("refund total overflows")))?;
    let now_ms = to_millis(console.app.clock.now());
    let rows = crate::store::entitlements::of_order(&console.app.db, &order.order_no)
        .await
        .map_err(Failure::internal)?;
    let mut lines = Vec::new();
    // The rows the refund's settlement follows (`entitlements::follow_refunds`).
    for row in rows
        .iter()
        .filter(|r| r.status == EntitlementStatus::Active)
    {
        let Some(grant) = order.grants.iter().find(|g| g.action == row.action) else {
            continue;
        };
        let action = row.action.as_str();
        let line = match after_refunds(row, grant, order.amount, refunded, now_ms) {
            AfterRefunds::Unchanged => format!("{action}：不变"),
            AfterRefunds::Revoke => format!("{action}：撤销"),
            AfterRefunds::Reduce { quota, until_ms } => match (row.quota, quota) {
                (Some(before), Some(after)) if after < before => {
                    format!("{action}：{before} → {after} 次")
                }
                _ => format!(
                    "{action}：有效期 {} → {}",
                    time(to_millis(row.valid_until)),
                    time(until_ms)
                ),
            },
        };
        lines.push(line);
    }
    Ok(lines)
}

#[derive(Deserialize)]
pub struct Go {
    token: String,
    amount: String,
    #[serde(default)]
    reason: String,
}

pub async fn submit(
    State(console): State<Console>,
    Path(order_no): Path<String>,
    posted: Posted<Go>,
) -> Result<Response, Failure> {
    let viewer = &posted.viewer;
    viewer.require(Scope::Finance)?;
    let go = &posted.form;
    let order = load(&console, &order_no).await?;
    let back = Redirect::to(&format!("/console/orders/{}", order.order_no)).into_response();
    if go.token.is_empty() || go.token.len() > 255 {
        return Err(Failure::BadRequest(
            "缺少确认令牌，请从订单页重新发起。".into(),
        ));
    }
    let amount =
        Fen::parse_yuan(&go.amount).map_err(|e| Failure::BadRequest(format!("金额不对：{e}")))?;
    let reason = (!go.reason.is_empty()).then(|| go.reason.clone());
    let key = console.app.idempotency_keys.key(&go.token);
    let sent = tokio::spawn(send(
        console.app.clone(),
        order.order_no.clone(),
        (amount, reason),
        viewer.actor(),
        key,
    ))
    .await
    .map_err(Failure::internal)?
    .map_err(Failure::internal)?;
    match sent {
        // The same confirmation sent again (a double click, a reload): already done.
        Sent::Started | Sent::Replayed => Ok(back),
        Sent::InFlight => Ok(frame(
            "退款处理中",
            Some(viewer.nav()),
            html! { p { "这笔退款正在处理，请稍后查看 " a href=(format!("/console/orders/{}", order.order_no)) { "订单" } "。" } },
        )
        .into_response()),
        Sent::Mismatch => Err(Failure::BadRequest(
            "此确认令牌已用于另一笔退款，请从订单页重新发起。".into(),
        )),
        Sent::Refused(e) => Err(refused(e)),
    }
}

/// What became of a confirmed refund.
enum Sent {
    Started,
    Replayed,
    /// Another request with the same confirmation is sending it now.
    InFlight,
    Mismatch,
    Refused(StartError),
}

/// Claims the confirmation's token under `console:<name>` as the API claims an
/// Idempotency-Key and, when this request owns it, starts the refund. Run as a task of its
/// own: once the claim is written (the SQLite writer writes it even for a request that has
/// gone) the refund must follow, whether or not the browser still waits. A double-click's
/// second press cancels the first's navigation and the server drops that request's handler;
/// dropped mid-way, it left the claim in flight with nothing written or sent, and the second
/// press was told the refund was under way (tests/console_browser.rs).
async fn send(
    app: AppState,
    order_no: OrderNo,
    (amount, reason): (Fen, Option<String>),
    actor: Actor,
    key: Key,
) -> Result<Sent, sqlx::Error> {
    let owner = actor.to_string();
    let request = serde_json::json!({"order_no": order_no, "amount": amount, "reason": reason});
    let hash = idempotency::request_hash("refunds", &request);
    let now_ms = to_millis(app.clock.now());
    match idempotency::claim(
        &app.db,
        &owner,
        key.stored_key(),
        key.earlier(),
        &hash,
        now_ms,
    )
    .await?
    {
        Claim::Owned => {}
        Claim::Replay { .. } => return Ok(Sent::Replayed),
        Claim::InFlight => return Ok(Sent::InFlight),
        Claim::Mismatch => return Ok(Sent::Mismatch),
    }
    let claim = OwnedClaim {
        api_key_id: &owner,
        key: key.stored(),
    };
    let started = crate::refunds::start(
        &app.refunds(),
        &order_no,
        amount,
        reason,
        &actor,
        Some(claim),
        // A replay only needs to know it was done: it goes back to the order page.
        |r| serde_json::json!({"refund_id": r.refund_id}).to_string(),
    )
    .await;
    match started {
        Ok(_) => Ok(Sent::Started),
        Err(e) => {
            // Nothing was written: the same confirmation may be sent again.
            idempotency::release(app.db.pool(), &owner, key.stored()).await?;
            Ok(Sent::Refused(e))
        }
    }
}

fn refused(e: StartError) -> Failure {
    match e {
        StartError::UnknownOrder => Failure::NotFound("没有这个订单。".into()),
        StartError::NotRefundable(status) => {
            Failure::BadRequest(format!("订单现在是 {status}，不能退款。"))
        }
        StartError::AmountInvalid { refundable } => Failure::BadRequest(format!(
            "金额须大于 0 且不超过可退的 {}。",
            yuan(refundable)
        )),
        StartError::ReasonNotNeutral => Failure::BadRequest("原因中不能出现雇主 ID。".into()),
        StartError::ProviderDisabled(_) => {
            Failure::BadRequest("这个订单的支付渠道没有配置，不能退款。".into())
        }
        StartError::Db(e) => Failure::internal(e),
    }
}
