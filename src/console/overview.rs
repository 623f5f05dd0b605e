//! The overview: today's and the last 30 days' money per provider (paid, refunded, net) with a
//! daily chart, open discrepancies (scope `finance`); erasures due and overdue (scope
//! `privacy`); jobs that failed or have not run when due (everyone).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{Duration, NaiveDate};
use maud::{Markup, html};

use super::chart::{Day, Series, stacked_bars};
use super::context::{Console, PastDays};
use super::operations::{JobState, job_health, state_label};
use super::page::{Failure, Page, frame, provider_label, yuan_signed};
use super::session::Viewer;
use crate::clock::beijing;
use crate::domain::{Fen, ProviderId, Scope};
use crate::store::overview::{self as store, DayTotal};

/// How long the past days' sums are kept.
const PAST_DAYS_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The days the overview covers, today included.
const DAYS: i64 = 30;

/// Counts and sums of one provider over some days.
#[derive(Default, Clone, Copy)]
struct Sums {
    paid_n: i64,
    paid: i64,
    refunded_n: i64,
    refunded: i64,
}

/// The date of a Beijing day number (days since 1970-01-01 in Beijing).
fn date_of(day: i64) -> NaiveDate {
    NaiveDate::default() + Duration::days(day)
}

/// The sums of the days before today: read at most once a minute per instance (a month of
/// payments is the overview's one large read even from the day indexes: 10 ms on SQLite and
/// 24 ms on PostgreSQL at 90,000 payments, BENCHMARKS.md), so a past day healed by
/// reconciliation shows within a minute; today's are read at every view.
async fn past_days(
    console: &Console,
    today: i64,
    days: std::ops::Range<i64>,
) -> Result<(Vec<DayTotal>, Vec<DayTotal>), Failure> {
    let now = std::time::Instant::now();
    if let Some(kept) = console
        .past_days
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        && kept.today == today
        && now.duration_since(kept.read_at) < PAST_DAYS_FOR
    {
        return Ok((kept.paid.clone(), kept.refunded.clone()));
    }
    let db = &console.app.db;
    let paid = store::daily_payments(db, days.clone())
        .await
        .map_err(Failure::internal)?;
    let refunded = store::daily_refunds(db, days)
        .await
        .map_err(Failure::internal)?;
    *console.past_days.lock().unwrap_or_else(|p| p.into_inner()) = Some(PastDays {
        today,
        read_at: now,
        paid: paid.clone(),
        refunded: refunded.clone(),
    });
    Ok((paid, refunded))
}

/// The money part, for `finance`.
async fn money(console: &Console, today: i64) -> Result<Markup, Failure> {
    let db = &console.app.db;
    let first = today - (DAYS - 1);
    let (mut paid, mut refunded) = past_days(console, today, first..today).await?;
    // Today's, always read now.
    paid.extend(
        store::daily_payments(db, today..today + 1)
            .await
            .map_err(Failure::internal)?,
    );
    refunded.extend(
        store::daily_refunds(db, today..today + 1)
            .await
            .map_err(Failure::internal)?,
    );
    let providers = ProviderId::ALL;
    let (mut today_sums, mut month_sums) = (BTreeMap::new(), BTreeMap::new());
    let mut add = |t: &DayTotal, paid: bool| {
        for (map, include) in [(&mut today_sums, t.day == today), (&mut month_sums, true)] {
            if !include {
                continue;
            }
            let s: &mut Sums = map.entry(t.provider.as_str()).or_default();
            if paid {
                s.paid_n += t.count;
                s.paid += t.amount.get();
            } else {
                s.refunded_n += t.count;
                s.refunded += t.amount.get();
            }
        }
    };
    paid.iter().for_each(|t| add(t, true));
    refunded.iter().for_each(|t| add(t, false));
    let since = date_of(first);
    let open = store::open_discrepancies(db, since)
        .await
        .map_err(Failure::internal)?;
    let chart_days = (first..=today)
        .map(|day| {
            let amounts = providers
                .iter()
                .map(|p| day_sum(&paid, day, *p))
                .collect::<Result<_, _>>()?;
            Ok(Day {
                label: date_of(day).format("%m-%d").to_string(),
                amounts,
            })
        })
        .collect::<Result<Vec<Day>, Failure>>()?;
    let series: Vec<Series> = providers
        .iter()
        .map(|p| Series {
            class: p.as_str(),
            name: provider_label(p.as_str()),
        })
        .collect();
    Ok(html! {
        h2 { "收款" }
        (sums_table("今天", &providers, &today_sums))
        (sums_table(&format!("近 {DAYS} 天（{since} 起）"), &providers, &month_sums))
        h2 { "每日收款（近 " (DAYS) " 天）" }
        (stacked_bars(&chart_days, &series))
        p { @for s in &series { span class=(format!("legend legend-{}", s.class)) { "■ " (s.name) } " " } }
        h2 { "对账" }
        p {
            @if open > 0 {
                a.bad href="/console/reconciliations" { (open) " 条差异未处理" }
                " （近 " (DAYS) " 天的对账）"
            } @else { span.ok { "近 " (DAYS) " 天的对账没有未处理的差异" } }
        }
    })
}

/// What `provider` took on `day` (the grouped rows hold at most one per pair).
fn day_sum(totals: &[DayTotal], day: i64, provider: ProviderId) -> Result<Fen, Failure> {
    totals
        .iter()
        .filter(|t| t.day == day && t.provider == provider)
        .try_fold(Fen::ZERO, |sum, t| sum.checked_add(t.amount))
        .ok_or_else(|| Failure::internal(anyhow::anyhow!("a day's payments overflow")))
}

fn sums_table(caption: &str, providers: &[ProviderId], sums: &BTreeMap<&str, Sums>) -> Markup {
    html! {
        table.sums {
            caption { (caption) }
            thead { tr { th { "渠道" } th.num { "收款笔数" } th.num { "收款金额" } th.num { "退款笔数" } th.num { "退款金额" } th.num { "净额" } } }
            tbody {
                @for p in providers {
                    @let s = sums.get(p.as_str()).copied().unwrap_or_default();
                    tr {
                        td { (provider_label(p.as_str())) " " code { (p.as_str()) } }
                        td.num { (s.paid_n) }
                        td.num { (yuan_signed(s.paid)) }
                        td.num { (s.refunded_n) }
                        td.num { (yuan_signed(s.refunded)) }
                        td.num { (yuan_signed(s.paid - s.refunded)) }
                    }
                }
            }
        }
    }
}

pub async fn page(State(console): State<Console>, viewer: Viewer) -> Result<Page, Failure> {
    let now = console.app.clock.now();
    let local = now.with_timezone(&beijing()).date_naive();
    let today = (local - NaiveDate::default()).num_days();
    let money = if viewer.has(Scope::Finance) {
        Some(money(&console, today).await?)
    } else {
        None
    };
    let erasures = if viewer.has(Scope::Privacy) {
        Some(
            crate::store::erasures::pending_and_overdue(&console.app.db, now)
                .await
                .map_err(Failure::internal)?,
        )
    } else {
        None
    };
    let jobs = job_health(&console, now).await?;
    let troubled: Vec<_> = jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Failed | JobState::Overdue))
        .collect();
    Ok(frame(
        "概览",
        Some(viewer.nav()),
        html! {
            @if let Some(m) = money { (m) }
            @if let Some((pending, overdue)) = erasures {
                h2 { "账号注销" }
                p {
                    a href="/console/erasures" { (pending) " 个待处理" }
                    @if overdue > 0 { "，" span.overdue { (overdue) " 个已超期" } }
                }
            }
            h2 { "任务" }
            @if troubled.is_empty() {
                p.ok { "所有任务正常" }
            } @else {
                ul {
                    @for j in troubled {
                        li { code { (j.job.name()) } " " (state_label(j.state)) }
                    }
                }
                p { a href="/console/operations" { "查看运维页" } }
            }
        },
    ))
}
