//! Account deletion (scope `privacy`): the requests with their `due_by` and status, overdue
//! ones marked; a request for an employer id, after a confirmation that says what will
//! happen. The list never shows an employer id: a request shows its pseudonym once carried
//! out, as the API does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::context::Console;
use super::page::{Failure, Page, frame, time};
use super::session::{Posted, Viewer};
use crate::clock::to_millis;
use crate::domain::{EmployerId, ErasureStatus, Scope};
use crate::privacy::PrivacyError;

pub async fn list(State(console): State<Console>, viewer: Viewer) -> Result<Page, Failure> {
    viewer.require(Scope::Privacy)?;
    let now = console.app.clock.now();
    let rows = crate::store::erasures::recent(&console.app.db, 200)
        .await
        .map_err(Failure::internal)?;
    Ok(frame(
        "账号注销",
        Some(viewer.nav()),
        html! {
            p { "注销请求须在两个工作日内完成（隐私政策第四条）。" }
            form.filters method="post" action="/console/erasures/confirm" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label { "雇主 ID" input name="employer_id" required; }
                button type="submit" { "申请注销…" }
            }
            table #erasures {
                thead { tr { th { "请求" } th { "状态" } th { "申请时间" } th { "截止" } th { "完成" } th { "发起" } } }
                tbody {
                    @for r in &rows {
                        @let overdue = r.status == ErasureStatus::Pending && r.due_by < now;
                        tr {
                            td { code { (r.erasure_id) } }
                            td {
                                code { (r.status.as_str()) }
                                @if overdue { " " span.overdue { "已超期" } }
                            }
                            td { (time(to_millis(r.requested_at))) }
                            td { (time(to_millis(r.due_by))) }
                            td { @if let Some(t) = r.completed_at { (time(to_millis(t))) } }
                            td { @if let Some(a) = &r.actor { code { (a) } } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { "没有注销请求。" } }
        },
    ))
}

#[derive(Deserialize)]
pub struct Ask {
    employer_id: String,
}

fn employer(ask: &Ask) -> Result<EmployerId, Failure> {
    EmployerId::parse(ask.employer_id.trim())
        .ok_or_else(|| Failure::BadRequest("雇主 ID 格式不对。".into()))
}

/// What will happen, before anything does.
pub async fn confirm(
    State(_console): State<Console>,
    posted: Posted<Ask>,
) -> Result<Page, Failure> {
    let viewer = &posted.viewer;
    viewer.require(Scope::Privacy)?;
    let employer = employer(&posted.form)?;
    Ok(frame(
        "确认注销",
        Some(viewer.nav()),
        html! {
            p { "将注销雇主 " code { (employer.as_str()) } " 的账号数据：" }
            ul {
                li { "其待支付订单先向渠道查询，未支付的关闭；" }
                li { "生效中的权益全部撤销（account_deleted）；" }
                li { "订单、权益、审计记录、事件和已存的请求应答中的雇主 ID 换成不可逆的假名，与其有关的自由文本（退款原因、简历 ID）删除；" }
                li { "金额、订单号、交易号、退款和对账记录按法律要求保留；" }
                li { "两个工作日内完成，之后到账的支付全额退回。" }
            }
            p.notice { "此操作不可撤销。" }
            form.stack method="post" action="/console/erasures" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="employer_id" value=(employer.as_str());
                button.danger type="submit" { "确认注销" }
            }
            p { a href="/console/erasures" { "取消" } }
        },
    ))
}

pub async fn submit(
    State(console): State<Console>,
    posted: Posted<Ask>,
) -> Result<Response, Failure> {
    let viewer = &posted.viewer;
    viewer.require(Scope::Privacy)?;
    let employer = employer(&posted.form)?;
    let actor = viewer.actor();
    match crate::privacy::request(&console.app.erasures(), &employer, &actor, None, |_| {
        String::new()
    })
    .await
    {
        Ok(_) => Ok(Redirect::to("/console/erasures").into_response()),
        Err(PrivacyError::NotConfigured) => Ok((
            StatusCode::CONFLICT,
            frame(
                "无法注销",
                Some(viewer.nav()),
                html! { p.error { "没有配置假名密钥（[privacy] pseudonym_key_file），不能注销。" } },
            ),
        )
            .into_response()),
        Err(e) => Err(Failure::internal(e)),
    }
}
