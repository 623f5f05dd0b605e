//! Reconciliation (scope `finance`): the runs by date and provider with each class's count and
//! amount; one run's discrepancies, filtered by class and healed, with the CSV; "run again"
//! for a date, recorded as the person who asked.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::context::Console;
use super::page::{Failure, Page, frame, provider_label, time, yuan, yuan_signed};
use super::session::{Posted, Viewer};
use crate::domain::reconciliation::{Discrepancy, DiscrepancyClass};
use crate::domain::{Fen, ProviderId, Scope, parse_date};
use crate::reconcile::ReconcileError;
use crate::store::reconciliations::{self as store, RunRow};

pub fn class_label(class: DiscrepancyClass) -> &'static str {
    match class.as_str() {
        "matched" => "已匹配",
        "missing_local" => "本地缺失",
        "missing_remote" => "渠道缺失",
        "amount_mismatch" => "金额不符",
        "status_mismatch" => "状态不符",
        "duplicate_remote" => "渠道重复",
        _ => "其他",
    }
}

/// A class's count and amount in a run's summary, of `kinds` (`payments`, `refunds`) together.
/// A class the run found nothing of is not in the summary: zero of it.
fn tally_of(run: &RunRow, class: DiscrepancyClass, kinds: &[&str]) -> (u64, i64) {
    kinds
        .iter()
        .filter_map(|kind| run.summary.get(kind)?.get(class.as_str()))
        .fold((0, 0), |(n, fen), t| {
            (
                n + t.get("count").and_then(|v| v.as_u64()).unwrap_or(0),
                fen + t.get("amount_fen").and_then(|v| v.as_i64()).unwrap_or(0),
            )
        })
}

/// Payments and refunds of a class together: how many rows it holds (the list's count).
fn tally(run: &RunRow, class: DiscrepancyClass) -> u64 {
    tally_of(run, class, &["payments", "refunds"]).0
}

#[derive(Deserialize, Default)]
pub struct Range {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn run_form(csrf: &str, provider: &str, date: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action="/console/reconciliations" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="provider" value=(provider);
            input type="hidden" name="date" value=(date);
            button type="submit" { (label) }
        }
    }
}

pub async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(range): Query<Range>,
) -> Result<Page, Failure> {
    viewer.require(Scope::Finance)?;
    let provider = match range.provider.as_str() {
        "" => None,
        p => Some(
            ProviderId::parse(p).ok_or_else(|| Failure::BadRequest("没有这个支付渠道。".into()))?,
        ),
    };
    let date = |t: &str| match t {
        "" => Ok(None),
        t => parse_date(t)
            .map(Some)
            .map_err(|_| Failure::BadRequest(format!("日期“{t}”格式不对"))),
    };
    let (from, to) = (date(&range.from)?, date(&range.to)?);
    let runs = store::list(console.app.db.reader(), provider, (from, to), 120)
        .await
        .map_err(Failure::internal)?;
    let classes = &DiscrepancyClass::ALL;
    Ok(frame(
        "对账",
        Some(viewer.nav()),
        html! {
            form.filters method="get" action="/console/reconciliations" {
                label { "渠道" select name="provider" {
                    option value="" { "全部" }
                    @for p in ProviderId::ALL { option value=(p.as_str()) selected[range.provider == p.as_str()] { (provider_label(p.as_str())) } }
                } }
                label { "账单日从" input type="date" name="from" value=(range.from); }
                label { "到" input type="date" name="to" value=(range.to); }
                button type="submit" { "查询" }
            }
            form.filters method="post" action="/console/reconciliations" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label { "渠道" select name="provider" {
                    @for p in ProviderId::ALL { option value=(p.as_str()) { (provider_label(p.as_str())) } }
                } }
                label { "账单日" input type="date" name="date" required; }
                button type="submit" { "对账" }
            }
            table #runs {
                thead { tr {
                    th { "账单日" } th { "渠道" } th { "状态" }
                    @for c in classes { th.num { (class_label(*c)) br; code { (c.as_str()) } } }
                    th.num { "已修复" } th { "发起" } th { "完成" } th {}
                } }
                tbody {
                    @for run in &runs {
                        tr {
                            td { a href=(format!("/console/reconciliations/{}", run.reconciliation_id)) { (run.bill_date) } }
                            td { (provider_label(run.provider.as_str())) }
                            td { code { (run.status.as_str()) } @if let Some(f) = &run.failure { " " code.bad { (f) } } }
                            @for c in classes {
                                td.num { (tally(run, *c)) }
                            }
                            td.num { (run.summary.get("healed").and_then(|h| h.as_u64()).unwrap_or(0)) }
                            td { @if let Some(a) = &run.actor { code { (a) } } }
                            td { (time(run.finished_at)) }
                            td { (run_form(&viewer.csrf, run.provider.as_str(), &run.bill_date.to_string(), "重新对账")) }
                        }
                    }
                }
            }
            @if runs.is_empty() { p { "没有对账记录。" } }
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    class: String,
    #[serde(default)]
    healed: String,
}

pub async fn one(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(filter): Query<Filter>,
) -> Result<Page, Failure> {
    viewer.require(Scope::Finance)?;
    let run = load(&console, &id).await?;
    let class = match filter.class.as_str() {
        "" => None,
        c => Some(
            DiscrepancyClass::parse_stored(c)
                .ok_or_else(|| Failure::BadRequest("没有这个差异类别。".into()))?,
        ),
    };
    let healed = match filter.healed.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let rows = store::filtered(
        console.app.db.reader(),
        &run.reconciliation_id,
        class,
        healed,
        500,
    )
    .await
    .map_err(Failure::internal)?;
    Ok(frame(
        &format!(
            "对账 {} {}",
            provider_label(run.provider.as_str()),
            run.bill_date
        ),
        Some(viewer.nav()),
        html! {
            (run_facts(&run))
            (classes_table(&run))
            // A div, not a p: a <form> start tag closes an open <p>, which left the button on
            // a line of its own.
            div.actions {
                a #csv href=(format!("/console/reconciliations/{}/discrepancies.csv", run.reconciliation_id)) { "下载差异 CSV" }
                " · "
                (run_form(&viewer.csrf, run.provider.as_str(), &run.bill_date.to_string(), "重新对账"))
            }
            h2 { "差异" }
            (filter_form(&filter))
            (discrepancies_table(&rows))
            @if rows.is_empty() { p { "没有符合条件的差异。" } }
        },
    ))
}

/// The run's status, who started it, when, and how many bill rows it read ("—" when its
/// summary does not say: a run that failed before reading).
fn run_facts(run: &RunRow) -> Markup {
    html! {
        dl.facts {
            dt { "状态" } dd { code { (run.status.as_str()) } }
            dt { "发起" } dd { @match &run.actor { Some(a) => { code { (a) } } None => { "—" } } }
            dt { "开始" } dd { (time(run.started_at)) }
            dt { "完成" } dd { (time(run.finished_at)) }
            dt { "账单行数" } dd {
                @match run.summary.get("bill_rows").and_then(|v| v.as_u64()) {
                    Some(n) => { (n) }
                    None => { "—" }
                }
            }
        }
    }
}

/// Each class's count and amount, payments and refunds apart.
fn classes_table(run: &RunRow) -> Markup {
    html! {
        table #classes {
            thead { tr { th { "类别" } th.num { "支付笔数" } th.num { "支付金额" } th.num { "退款笔数" } th.num { "退款金额" } } }
            tbody {
                @for c in DiscrepancyClass::ALL {
                    @let (pn, pf) = tally_of(run, c, &["payments"]);
                    @let (rn, rf) = tally_of(run, c, &["refunds"]);
                    tr {
                        td { (class_label(c)) " " code { (c.as_str()) } }
                        td.num { (pn) } td.num { (yuan_signed(pf)) }
                        td.num { (rn) } td.num { (yuan_signed(rf)) }
                    }
                }
            }
        }
    }
}

/// The discrepancies' filters, as asked.
fn filter_form(filter: &Filter) -> Markup {
    html! {
        form.filters method="get" {
            label { "类别" select name="class" {
                option value="" { "全部" }
                @for c in &DiscrepancyClass::ALL[1..] { option value=(c.as_str()) selected[filter.class == c.as_str()] { (class_label(*c)) } }
            } }
            label { "已修复" select name="healed" {
                option value="" { "全部" }
                option value="yes" selected[filter.healed == "yes"] { "是" }
                option value="no" selected[filter.healed == "no"] { "否" }
            } }
            button type="submit" { "筛选" }
        }
    }
}

/// A run's discrepancies, healed ones marked; an amount a side does not have is left blank.
fn discrepancies_table(rows: &[(i64, Discrepancy)]) -> Markup {
    let amount = |f: Option<Fen>| f.map(yuan).unwrap_or_default();
    html! {
        table #discrepancies {
            thead { tr { th { "类别" } th { "类型" } th { "订单号" } th { "渠道交易号" } th.num { "账单金额" } th.num { "本地金额" } th { "账单状态" } th { "本地状态" } th { "已修复" } th { "备注" } } }
            tbody {
                @for (_, d) in rows {
                    tr {
                        td { (class_label(d.class)) " " code { (d.class.as_str()) } }
                        td { code { (d.kind.as_str()) } }
                        td { @if let Some(no) = &d.order_no { a href=(format!("/console/orders/{no}")) { code { (no) } } } }
                        td { code { (d.provider_txn_id.as_deref().unwrap_or("")) } }
                        td.num { (amount(d.bill_amount_fen)) }
                        td.num { (amount(d.local_amount_fen)) }
                        td { (d.bill_status.as_deref().unwrap_or("")) }
                        td { (d.local_status.as_deref().unwrap_or("")) }
                        td { @if d.healed { span.ok { "已修复" } } }
                        td { (d.note.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

async fn load(console: &Console, id: &str) -> Result<RunRow, Failure> {
    store::get(console.app.db.reader(), id)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(|| Failure::NotFound("没有这次对账。".into()))
}

pub async fn csv(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    viewer.require(Scope::Finance)?;
    let run = load(&console, &id).await?;
    let body = Body::from_stream(crate::reconcile::report_csv::stream(
        console.app.db.clone(),
        run.reconciliation_id.clone(),
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    crate::reconcile::report_csv::filename(&run)
                ),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct RunAsk {
    provider: String,
    date: String,
}

/// Runs (or runs again) a date now, as the person who asked; then its page.
pub async fn run_again(
    State(console): State<Console>,
    posted: Posted<RunAsk>,
) -> Result<Response, Failure> {
    let viewer = &posted.viewer;
    viewer.require(Scope::Finance)?;
    let provider = ProviderId::parse(&posted.form.provider)
        .ok_or_else(|| Failure::BadRequest("没有这个支付渠道。".into()))?;
    let date = parse_date(&posted.form.date)
        .map_err(|_| Failure::BadRequest("账单日须为 YYYY-MM-DD。".into()))?;
    let actor = viewer.actor();
    match crate::reconcile::run(console.app.reconcile(&actor), provider, date).await {
        Ok(run) => Ok(Redirect::to(&format!(
            "/console/reconciliations/{}",
            run.reconciliation_id
        ))
        .into_response()),
        Err(e) => {
            let why = match &e {
                ReconcileError::ProviderDisabled(_) => "这个支付渠道没有配置。".to_owned(),
                ReconcileError::Bill(b) => format!("账单不可用：{b}"),
                ReconcileError::Db(_) => return Err(Failure::internal(e)),
            };
            tracing::warn!(error = %e, provider = %provider, %date, "console reconciliation refused");
            Ok((
                StatusCode::CONFLICT,
                frame(
                    "对账未完成",
                    Some(viewer.nav()),
                    html! { p.error { (why) } p { a href="/console/reconciliations" { "返回" } } },
                ),
            )
                .into_response())
        }
    }
}
