//! Orders: the search (order number, employer, status, provider, channel, creation dates;
//! newest first, keyset-paged) and one order's page — amount, status, its timeline (events in
//! order, with who started each action), the payment, every refund, the entitlements it
//! granted with quota used, and what a refund may still take. No payer field exists to show.

use axum::extract::{Path, Query, State};
use chrono::{NaiveTime, TimeZone};
use maud::{Markup, html};
use serde::Deserialize;

use super::context::Console;
use super::page::{
    Failure, Page, frame, labelled, order_status_label, provider_label, refund_status_label, time,
    time_text, yuan,
};
use super::session::Viewer;
use crate::clock::{beijing, to_millis};
use crate::domain::{Channel, EmployerId, Fen, OrderNo, OrderStatus, ProviderId, Scope};
use crate::entitlements::Entitlement;
use crate::store::events::Event;
use crate::store::order_search::{self, After, OrderFilter};
use crate::store::orders::{OrderRow, PaymentRow};
use crate::store::refunds::RefundRow;

/// Who may read orders: as on the API's order routes.
pub const READERS: [Scope; 3] = [Scope::Checkout, Scope::Entitlements, Scope::Finance];
const PAGE_SIZE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    order_no: String,
    #[serde(default)]
    employer: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// `<created_at ms>-<order_no>`: the last row of the page before.
    #[serde(default)]
    after: String,
}

/// The filter a search form asks for; what does not parse is said back in words.
fn filter_of(s: &Search) -> Result<(OrderFilter, Option<After>), String> {
    fn field<T>(
        text: &str,
        parse: impl Fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<Option<T>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        parse(text)
            .map(Some)
            .ok_or_else(|| format!("{what}“{text}”格式不对"))
    }
    let day = |text: &str, what: &str| -> Result<Option<i64>, String> {
        field(text, |t| crate::domain::parse_date(t).ok(), what).map(|d| {
            d.and_then(|d| {
                beijing()
                    .from_local_datetime(&d.and_time(NaiveTime::MIN))
                    .single()
            })
            .map(|t| to_millis(t.to_utc()))
        })
    };
    let filter = OrderFilter {
        order_no: field(&s.order_no, OrderNo::parse, "订单号")?,
        employer: field(&s.employer, EmployerId::parse, "雇主 ID ")?,
        status: field(&s.status, OrderStatus::parse, "状态")?,
        provider: field(&s.provider, ProviderId::parse, "支付渠道")?,
        channel: field(&s.channel, Channel::parse, "支付方式")?,
        from_ms: day(&s.from, "开始日期")?,
        // The end date is inclusive: before the next day's start.
        to_ms: day(&s.to, "结束日期")?.map(|ms| ms + 86_400_000),
    };
    let after = field(
        &s.after,
        |t| {
            let (ms, no) = t.split_once('-')?;
            Some(After {
                created_at: ms.parse().ok()?,
                order_no: OrderNo::parse(no)?,
            })
        },
        "分页位置",
    )?;
    Ok((filter, after))
}

pub async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> Result<Page, Failure> {
    viewer.require_any(&READERS)?;
    let (rows, error) = match filter_of(&search) {
        Ok((filter, after)) => (
            order_search::search(&console.app.db, &filter, after.as_ref(), PAGE_SIZE)
                .await
                .map_err(Failure::internal)?,
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last())
        .flatten()
        .map(|last| next_link(&search, last));
    Ok(frame(
        "订单",
        Some(viewer.nav()),
        html! {
            (search_form(&search))
            @if let Some(e) = error { p.error role="alert" { (e) } }
            table {
                thead { tr { th { "订单号" } th { "雇主" } th { "套餐" } th.num { "金额" } th { "状态" } th { "渠道" } th { "创建时间" } } }
                tbody {
                    @for o in &rows {
                        tr {
                            td { a href=(format!("/console/orders/{}", o.order_no)) { code { (o.order_no) } } }
                            td { (o.employer_id.as_str()) }
                            td { code { (o.plan_id) } }
                            td.num { (yuan(o.amount)) }
                            td { (labelled(order_status_label(o.status), o.status.as_str())) }
                            td { (provider_label(o.provider.as_str())) " " code { (o.channel.as_str()) } }
                            td { (time(o.created_at)) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { "没有符合条件的订单。" } }
            @if let Some(href) = next { p.pager { a href=(href) { "下一页 →" } } }
        },
    ))
}

fn search_form(s: &Search) -> Markup {
    let option = |value: &str, label: &str, current: &str| {
        html! { option value=(value) selected[value == current] { (label) } }
    };
    html! {
        form.filters method="get" action="/console/orders" {
            label { "订单号" input name="order_no" value=(s.order_no) size="28"; }
            label { "雇主 ID" input name="employer" value=(s.employer); }
            label { "状态" select name="status" {
                (option("", "全部", &s.status))
                @for st in OrderStatus::ALL { (option(st.as_str(), order_status_label(st), &s.status)) }
            } }
            label { "渠道" select name="provider" {
                (option("", "全部", &s.provider))
                @for p in ProviderId::ALL { (option(p.as_str(), provider_label(p.as_str()), &s.provider)) }
            } }
            label { "方式" input name="channel" value=(s.channel) placeholder="native / qr …" size="8"; }
            label { "创建日期从" input type="date" name="from" value=(s.from); }
            label { "到" input type="date" name="to" value=(s.to); }
            button type="submit" { "查询" }
        }
    }
}

/// The same search, from after `last`.
fn next_link(s: &Search, last: &OrderRow) -> String {
    let pairs = [
        ("order_no", s.order_no.as_str()),
        ("employer", s.employer.as_str()),
        ("status", s.status.as_str()),
        ("provider", s.provider.as_str()),
        ("channel", s.channel.as_str()),
        ("from", s.from.as_str()),
        ("to", s.to.as_str()),
    ];
    let after = format!("{}-{}", last.created_at, last.order_no);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .append_pair("after", &after)
        .finish();
    format!("/console/orders?{query}")
}

/// The order, or 404 in words.
pub async fn load(console: &Console, order_no: &str) -> Result<OrderRow, Failure> {
    let no = OrderNo::parse(order_no).ok_or_else(|| Failure::NotFound("没有这个订单。".into()))?;
    crate::store::orders::get(console.app.db.reader(), &no)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(|| Failure::NotFound("没有这个订单。".into()))
}

pub async fn one(
    State(console): State<Console>,
    viewer: Viewer,
    Path(order_no): Path<String>,
) -> Result<Page, Failure> {
    viewer.require_any(&READERS)?;
    let order = load(&console, &order_no).await?;
    let db = &console.app.db;
    let reader = db.reader();
    let no = &order.order_no;
    let payment = crate::store::orders::payment_of(reader, no)
        .await
        .map_err(Failure::internal)?;
    let refunds = crate::store::refunds::of_order(reader, no)
        .await
        .map_err(Failure::internal)?;
    let now = console.app.clock.now();
    let entitlements: Vec<Entitlement> = crate::store::entitlements::of_order(db, no)
        .await
        .map_err(Failure::internal)?
        .iter()
        .map(|row| Entitlement::at(row, now))
        .collect();
    let timeline = crate::store::events::of_order(db, no, 500)
        .await
        .map_err(Failure::internal)?;
    let refundable = order.status.may_refund().then(|| order.refundable());
    Ok(frame(
        &format!("订单 {no}"),
        Some(viewer.nav()),
        html! {
            (facts(&order, refundable))
            @if viewer.has(Scope::Finance) && refundable.is_some_and(|f| f.get() > 0) {
                p { a.button href=(format!("/console/orders/{no}/refund")) { "退款…" } }
            }
            h2 { "支付记录" }
            (payment_facts(payment.as_ref()))
            h2 { "退款" }
            (refunds_table(&refunds))
            h2 { "权益" }
            (entitlements_table(&entitlements))
            h2 { "时间线" }
            (timeline_list(&order, &timeline))
        },
    ))
}

/// The order's own facts; `refundable` is what a refund may still take (None: its status
/// allows none).
fn facts(order: &OrderRow, refundable: Option<Fen>) -> Markup {
    html! {
        dl.facts {
            dt { "状态" } dd #order-status { (labelled(order_status_label(order.status), order.status.as_str())) @if order.late_payment { " " span.warn { "关闭后到账 payment.late" } } }
            dt { "金额" } dd { (yuan(order.amount)) " " code { (order.currency.as_str()) } }
            dt { "已退款" } dd { (yuan(order.refunded)) @if order.refund_pending.get() > 0 { "（处理中 " (yuan(order.refund_pending)) "）" } }
            dt { "可退金额" } dd #refundable {
                @match refundable {
                    Some(left) => { (yuan(left)) }
                    None => { "—（" (order_status_label(order.status)) "的订单不能退款）" }
                }
            }
            dt { "雇主" } dd { (order.employer_id.as_str()) }
            dt { "套餐" } dd { code { (order.plan_id) } }
            dt { "渠道" } dd { (provider_label(order.provider.as_str())) " " code { (order.provider.as_str()) " / " (order.channel.as_str()) } }
            dt { "创建" } dd { (time(order.created_at)) }
            dt { "支付期限" } dd { (time(order.expires_at)) }
            @if let Some(t) = order.paid_at { dt { "支付" } dd { (time(t)) } }
            @if let Some(t) = order.closed_at { dt { "关闭" } dd { (time(t)) } }
        }
    }
}

/// The payment record: the provider's transaction, never a payer field (none is stored).
fn payment_facts(payment: Option<&PaymentRow>) -> Markup {
    html! {
        @match payment {
            Some(p) => {
                dl.facts {
                    dt { "渠道交易号" } dd { code { (p.provider_txn_id) } }
                    dt { "金额" } dd { (yuan(p.amount)) }
                    dt { "到账" } dd { (time(p.paid_at)) }
                    dt { "得知方式" } dd { code { (p.source.as_str()) } }
                    @if let Some(t) = &p.trade_type { dt { "交易类型" } dd { code { (t) } } }
                    @if let Some(b) = &p.bank_type { dt { "付款银行" } dd { code { (b) } } }
                }
            }
            None => { p { "尚无支付。" } }
        }
    }
}

/// Every refund of the order, with who started it (`origin` when no actor was recorded).
fn refunds_table(refunds: &[RefundRow]) -> Markup {
    html! {
        @if refunds.is_empty() { p { "没有退款。" } } @else {
            table #refunds {
                thead { tr { th { "退款号" } th.num { "金额" } th { "状态" } th { "发起" } th { "原因" } th { "创建" } th { "完成" } } }
                tbody {
                    @for r in refunds {
                        tr {
                            td { code { (r.refund_id) } }
                            td.num { (yuan(r.amount)) }
                            td { (labelled(refund_status_label(r.status), r.status.as_str())) @if let Some(f) = &r.failure { " " code { (f) } } }
                            td { @match &r.actor { Some(a) => { code { (a) } } None => { code { (r.origin.as_str()) } } } }
                            td { (r.reason.as_deref().unwrap_or("")) }
                            td { (time(r.created_at)) }
                            td { @if let Some(t) = r.succeeded_at.or(r.failed_at) { (time(t)) } }
                        }
                    }
                }
            }
        }
    }
}

/// The entitlements the order granted, with quota used and left.
fn entitlements_table(entitlements: &[Entitlement]) -> Markup {
    html! {
        @if entitlements.is_empty() { p { "没有权益。" } } @else {
            table #entitlements {
                thead { tr { th { "权益" } th { "操作" } th.num { "额度" } th.num { "已用" } th.num { "剩余" } th { "状态" } th { "有效期" } } }
                tbody {
                    @for e in entitlements {
                        tr {
                            td { code { (e.entitlement_id) } }
                            td { code { (e.action.as_str()) } }
                            td.num.quota { (e.quota.map_or_else(|| "不限".to_owned(), |q| q.to_string())) }
                            td.num { (e.used) }
                            td.num { (e.remaining.map_or_else(|| "不限".to_owned(), |q| q.to_string())) }
                            td { code { (e.status.as_str()) } }
                            td { (time_text(&e.valid_from)) " — " (time_text(&e.valid_until)) }
                        }
                    }
                }
            }
        }
    }
}

/// The order's events in order, each with the actor and amount its payload names.
fn timeline_list(order: &OrderRow, timeline: &[Event]) -> Markup {
    html! {
        ol #timeline {
            li { (time(order.created_at)) " 创建订单" }
            @for ev in timeline {
                li {
                    (time_text(&ev.created_at)) " " code { (ev.event_type) }
                    @if let Some(actor) = ev.data.get("actor").and_then(|a| a.as_str()) {
                        " · 由 " code.actor { (actor) }
                    }
                    @if let Some(amount) = ev.data.get("amount").and_then(|a| a.as_str()) {
                        " · ¥" (amount)
                    }
                }
            }
        }
    }
}
