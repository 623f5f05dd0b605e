//! `GET /openapi.json` (DESIGN.md §4): the HTTP API as an OpenAPI 3.1 document, generated with
//! utoipa from the types below. The handlers build their answers as JSON; these types describe
//! them, and `tests/openapi.rs` checks real answers against them so the two cannot drift apart.

#![allow(dead_code)] // the types and functions exist for the document only

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(ToSchema)]
#[schema(as = CreateOrder)]
/// `POST /v1/orders`. The price comes from the catalog, never from the caller.
struct CreateOrder {
    /// The platform's employer id, `[A-Za-z0-9_-]`, at most 64.
    employer_id: String,
    /// A plan id from `GET /v1/plans`.
    plan: String,
    /// `wechatpay` or `alipay`.
    provider: String,
    /// WeChat Pay: `native`, `jsapi`, `h5`, `app`; Alipay: `qr`, `page`, `wap`, `app`.
    channel: String,
    /// `jsapi` only, and required there: passed to WeChat for this request, never stored.
    payer_openid: Option<String>,
    /// `h5` only, and required there: passed to WeChat for this request, never stored.
    client_ip: Option<String>,
    /// Browser channels only (alipay `page`/`wap`, wechat `h5`): where the browser returns
    /// after paying, instead of `[checkout] return_url`. `{order_no}` is its only placeholder;
    /// https (http only on 127.0.0.1/localhost); its host must be in `[checkout]
    /// allowed_return_hosts`, else 422 `return_url_not_allowed` and nothing is written.
    return_url: Option<String>,
}

#[derive(ToSchema)]
/// An order.
struct Order {
    /// 26 random characters of `[0-9A-Z]`.
    order_no: String,
    /// `pending`, `paid`, `partially_refunded`, `refunded` or `closed`.
    status: String,
    employer_id: String,
    plan: String,
    /// Yuan with two decimals, e.g. `"199.00"`.
    amount: String,
    currency: String,
    provider: String,
    channel: String,
    /// What the buyer's client needs, by channel: `code_url` (native); `prepay_id` and
    /// `js_params` (jsapi); `h5_url` (h5); `prepay_id` and `app_params` (wechat app);
    /// `qr_code` (alipay qr); `pay_url` (alipay page/wap); `order_string` (alipay app).
    payment: Value,
    /// RFC 3339, `+08:00`.
    expires_at: String,
    created_at: String,
    paid_at: Option<String>,
    closed_at: Option<String>,
    /// Present (true) when the payment arrived after the order was closed.
    late_payment: Option<bool>,
    payment_record: Option<PaymentRecord>,
    /// With a payment: what went back so far, in total.
    refunded_amount: Option<String>,
    /// With a payment: its refunds, oldest first.
    refunds: Option<Vec<Refund>>,
}

#[derive(ToSchema)]
#[schema(as = CreateRefund)]
/// `POST /v1/orders/{order_no}/refunds`.
struct CreateRefund {
    /// Yuan, exact to the fen, more than zero and at most what is still refundable (the
    /// payment, less refunds that went back and refunds in flight).
    amount: String,
    /// Shown to the buyer: at most 80 characters, no control characters, nothing about the
    /// employer or a résumé.
    reason: Option<String>,
}

#[derive(ToSchema)]
/// A refund.
struct Refund {
    /// paygate's number, `RF` + 26 of `[0-9A-Z]`; for paygate's refunds also the provider's
    /// `out_refund_no` / `out_request_no`.
    refund_id: String,
    order_no: String,
    amount: String,
    currency: String,
    /// `processing`, `succeeded` or `failed`.
    status: String,
    /// `paygate` (this API, the CLI) or `provider` (made at the merchant portal, learned from
    /// a notification or a query).
    origin: String,
    reason: Option<String>,
    created_at: String,
    /// The provider's time when it gives one, else when paygate learned of it.
    succeeded_at: Option<String>,
    /// Failed refunds: `closed`, `abnormal` (finance must resolve it) or `refused:<code>`.
    failure: Option<String>,
    /// Who started it: `api_key:<id>`, `console:<name>`, `cli`, `job:erasure`; null for a
    /// refund made at the provider's portal (DESIGN.md §6).
    actor: Option<String>,
}

#[derive(ToSchema)]
/// The settled payment of an order.
struct PaymentRecord {
    provider_transaction_id: String,
    amount: String,
    currency: String,
    trade_type: Option<String>,
    bank_type: Option<String>,
    /// `notification`, `query` or `reconciliation`.
    source: String,
    paid_at: String,
}

#[derive(ToSchema)]
/// Every error: a stable `code` and a human message.
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(ToSchema)]
struct ErrorBody {
    code: String,
    message: String,
}

#[derive(ToSchema)]
/// 409 `order_paid` on cancel: the envelope plus the (paid) order.
struct OrderPaid {
    error: ErrorBody,
    order: Order,
}

#[derive(ToSchema)]
struct Plans {
    plans: Vec<PlanEntry>,
}

#[derive(ToSchema)]
struct PlanEntry {
    plan: String,
    name: String,
    price: String,
    currency: String,
    grants: Vec<GrantEntry>,
}

#[derive(ToSchema)]
struct GrantEntry {
    /// `view` or `download`.
    action: String,
    /// Null: unlimited.
    quota: Option<i64>,
    days: i64,
}

#[derive(ToSchema)]
struct Entitlements {
    employer_id: String,
    entitlements: Vec<EntitlementEntry>,
}

#[derive(ToSchema)]
struct EntitlementEntry {
    entitlement_id: String,
    order_no: String,
    plan: String,
    action: String,
    quota: Option<i64>,
    used: i64,
    remaining: Option<i64>,
    /// `active`, `expired` or `revoked`.
    status: String,
    valid_from: String,
    valid_until: String,
}

#[derive(ToSchema)]
struct ResumeAccess {
    resume_id: String,
    /// `view` or `download`.
    action: String,
}

#[derive(ToSchema)]
struct AccessGranted {
    granted: bool,
    entitlement_id: String,
    /// Null when unlimited.
    remaining: Option<i64>,
}

#[derive(ToSchema)]
struct Events {
    events: Vec<EventEntry>,
    /// Pass as `after` for the next page.
    next_after: i64,
    /// Retention deleted every event up to this id (delivered events older than
    /// `[privacy] events_days`, as a prefix of the feed); 0 when none was. A reader whose
    /// `after` is below it has missed the events in between for good.
    starts_after: i64,
}

#[derive(ToSchema)]
#[schema(as = CreateErasure)]
/// `POST /v1/privacy/erasures`: an account deletion.
struct CreateErasure {
    /// The platform's employer id, as orders carry it.
    employer_id: String,
}

#[derive(ToSchema)]
/// An erasure request. It never shows the employer id.
struct Erasure {
    /// `era_…`
    erasure_id: String,
    /// `pending`, `completed`.
    status: String,
    requested_at: String,
    /// The end of the second working day after the request's day (Asia/Shanghai; weekends and
    /// `[privacy] holidays` do not count).
    due_by: String,
    /// Once completed.
    completed_at: Option<String>,
    /// Once completed: what replaced the id everywhere (`erased:` and 56 hex digits).
    pseudonym: Option<String>,
    /// Who asked: `api_key:<id>`, `console:<name>`, `cli`.
    actor: Option<String>,
}

#[derive(ToSchema)]
/// An outbox event; the same shape is pushed to `[events] url`.
struct EventEntry {
    /// Gap-free, in commit order: dedupe on it.
    id: i64,
    /// `order.paid`, `order.closed`, `entitlement.granted`, `entitlement.reduced`,
    /// `entitlement.revoked`, `entitlement.expired`, `refund.succeeded`, `refund.failed`,
    /// `payment.late`, `employer.erased`, …
    #[schema(rename = "type")]
    r#type: String,
    order_no: Option<String>,
    created_at: String,
    data: Value,
}

#[derive(ToSchema)]
#[schema(as = RunReconciliation)]
/// `POST /v1/reconciliations`.
struct RunReconciliation {
    /// `wechatpay` or `alipay`.
    provider: String,
    /// The Asia/Shanghai day, `YYYY-MM-DD`.
    date: String,
}

#[derive(ToSchema)]
/// One reconciliation run: a provider's bill of one day against paygate's records.
struct Reconciliation {
    /// `rec_…`; a re-run of the date replaces the run (and its id).
    reconciliation_id: String,
    provider: String,
    date: String,
    /// `completed` or `failed`.
    status: String,
    failure: Option<String>,
    /// `bill_rows`, `bill_totals` (counts and amounts of the bill's payments and refunds),
    /// `local_payments` / `local_refunds` (paygate's of that day), `payments` / `refunds`:
    /// count and amount (fen) per class (`matched`, `missing_local`, `missing_remote`,
    /// `amount_mismatch`, `status_mismatch`, `duplicate_remote`), and `healed`.
    summary: Value,
    started_at: String,
    finished_at: String,
    /// Who started it: `job:reconciliation`, `api_key:<id>`, `console:<name>`, `cli`.
    actor: Option<String>,
}

#[derive(ToSchema)]
struct Reconciliations {
    /// Newest date first.
    reconciliations: Vec<Reconciliation>,
}

#[derive(ToSchema)]
struct Status {
    status: String,
}

#[utoipa::path(get, path = "/v1/plans", tag = "plans",
    responses((status = 200, body = Plans)), security(("api_key" = [])))]
fn plans() {}

#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = CreateOrder,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 characters; the same key and body replay the answer")),
    responses(
        (status = 201, body = Order),
        (status = 400, body = ErrorEnvelope, description = "malformed request"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "idempotency_key_in_flight"),
        (status = 422, body = ErrorEnvelope, description = "unknown plan, provider or channel; idempotency_key_reused"),
        (status = 502, body = ErrorEnvelope, description = "provider_unavailable or provider_rejected; nothing was created")),
    security(("api_key" = [])))]
fn create_order() {}

#[utoipa::path(get, path = "/v1/orders/{order_no}", tag = "orders",
    params(("order_no" = String, Path),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 30,
            description = "seconds: answer as soon as the status is no longer `pending`, or when the time is up (then still `pending`)")),
    responses((status = 200, body = Order),
        (status = 400, body = ErrorEnvelope, description = "invalid_wait (not whole seconds from 0 to 30)"),
        (status = 404, body = ErrorEnvelope)),
    security(("api_key" = [])))]
fn get_order() {}

#[utoipa::path(post, path = "/v1/orders/{order_no}/return-check", tag = "orders",
    params(("order_no" = String, Path)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "the raw query string Alipay appended to the return URL (a leading `?` is allowed); empty for WeChat Pay, whose redirect carries nothing"),
    responses((status = 200, body = Order, description = "verified, then asked the provider: `paid` when it reports the payment (settled now, through the one settlement path)"),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope, description = "return_query_rejected: the signature, order number, amount or app id does not check out; nothing changed"),
        (status = 502, body = ErrorEnvelope, description = "the provider could not be asked")),
    security(("api_key" = [])))]
fn return_check() {}

#[utoipa::path(post, path = "/v1/orders/{order_no}/cancel", tag = "orders",
    params(("order_no" = String, Path)),
    responses((status = 200, body = Order, description = "closed"),
        (status = 409, body = OrderPaid, description = "the buyer paid: settled, not closed"),
        (status = 404, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)),
    security(("api_key" = [])))]
fn cancel_order() {}

#[utoipa::path(post, path = "/v1/orders/{order_no}/refunds", tag = "refunds",
    params(("order_no" = String, Path),
        ("Idempotency-Key" = String, Header, description = "1 to 255 characters; the same key and body replay the answer")),
    request_body = CreateRefund,
    responses(
        (status = 201, body = Refund, description = "started; `processing` until the provider answers, or already final"),
        (status = 400, body = ErrorEnvelope, description = "malformed request or reason"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope, description = "order_not_found"),
        (status = 409, body = ErrorEnvelope, description = "order_not_refundable; idempotency_key_in_flight"),
        (status = 422, body = ErrorEnvelope, description = "refund_amount_invalid; idempotency_key_reused")),
    security(("api_key" = [])))]
fn create_refund() {}

#[utoipa::path(get, path = "/v1/orders/{order_no}/refunds/{refund_id}", tag = "refunds",
    params(("order_no" = String, Path), ("refund_id" = String, Path)),
    responses((status = 200, body = Refund), (status = 404, body = ErrorEnvelope)),
    security(("api_key" = [])))]
fn get_refund() {}

#[utoipa::path(post, path = "/v1/reconciliations", tag = "reconciliations",
    request_body = RunReconciliation,
    responses((status = 201, body = Reconciliation, description = "run now; replaces the date's previous run"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "bill_not_ready: the provider has no bill for the date yet"),
        (status = 422, body = ErrorEnvelope, description = "bill_invalid (hash, totals, encoding, truncation; nothing applied), unknown_provider, provider_disabled"),
        (status = 502, body = ErrorEnvelope, description = "provider_unavailable")),
    security(("api_key" = [])))]
fn run_reconciliation() {}

#[utoipa::path(get, path = "/v1/reconciliations", tag = "reconciliations",
    params(("provider" = Option<String>, Query), ("from" = Option<String>, Query, description = "YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "YYYY-MM-DD")),
    responses((status = 200, body = Reconciliations)), security(("api_key" = [])))]
fn list_reconciliations() {}

#[utoipa::path(get, path = "/v1/reconciliations/{id}", tag = "reconciliations",
    params(("id" = String, Path)),
    responses((status = 200, body = Reconciliation), (status = 404, body = ErrorEnvelope)),
    security(("api_key" = [])))]
fn get_reconciliation() {}

#[utoipa::path(get, path = "/v1/reconciliations/{id}/discrepancies.csv", tag = "reconciliations",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", description = "UTF-8 with BOM: class, kind, order_no, provider_transaction_id, refund_no, bill_amount, local_amount, bill_status, local_status, healed, note"),
        (status = 404, body = ErrorEnvelope)),
    security(("api_key" = [])))]
fn reconciliation_csv() {}

#[utoipa::path(get, path = "/v1/employers/{employer_id}/entitlements", tag = "entitlements",
    params(("employer_id" = String, Path)),
    responses((status = 200, body = Entitlements)), security(("api_key" = [])))]
fn entitlements() {}

#[utoipa::path(post, path = "/v1/employers/{employer_id}/resume-access", tag = "entitlements",
    params(("employer_id" = String, Path)), request_body = ResumeAccess,
    responses((status = 200, body = AccessGranted),
        (status = 403, body = ErrorEnvelope, description = "entitlement_expired: no entitlement of the action within its term, one ran out; no_entitlement: none held, only revoked ones, or the current one's quota used up (DESIGN.md §5)")),
    security(("api_key" = [])))]
fn resume_access() {}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Events)), security(("api_key" = [])))]
fn events() {}

#[utoipa::path(post, path = "/v1/privacy/erasures", tag = "privacy",
    params(("Idempotency-Key" = String, Header, description = "1 to 255 characters; the same key and body replay the answer")),
    request_body = CreateErasure,
    responses(
        (status = 202, body = Erasure, description = "recorded; the erasure job carries it out within minutes"),
        (status = 400, body = ErrorEnvelope, description = "malformed request, invalid_employer_id, missing_idempotency_key"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "idempotency_key_in_flight"),
        (status = 422, body = ErrorEnvelope, description = "idempotency_key_reused; privacy_not_configured")),
    security(("api_key" = [])))]
fn create_erasure() {}

#[utoipa::path(get, path = "/v1/privacy/erasures/{erasure_id}", tag = "privacy",
    params(("erasure_id" = String, Path)),
    responses((status = 200, body = Erasure), (status = 404, body = ErrorEnvelope, description = "erasure_not_found")),
    security(("api_key" = [])))]
fn get_erasure() {}

#[utoipa::path(post, path = "/webhooks/wechatpay", tag = "webhooks",
    request_body(content = String, content_type = "application/json", description = "WeChat Pay v3 notification, verified over its raw bytes"),
    responses((status = 204, description = "accepted (also a duplicate)"),
        (status = 401, description = "`{\"code\":\"FAIL\"}`: signature, window or serial"),
        (status = 400, description = "`{\"code\":\"FAIL\"}`: not our merchant or order"),
        (status = 500, description = "`{\"code\":\"FAIL\"}`: try again")))]
fn wechatpay_webhook() {}

#[utoipa::path(post, path = "/webhooks/alipay", tag = "webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Alipay trade_status_sync notification"),
    responses((status = 200, description = "`success` (also a duplicate)", content_type = "text/plain"),
        (status = 400, description = "`fail`: verification, app/seller/order/amount mismatch, unpaid status"),
        (status = 500, description = "`fail`: try again")))]
fn alipay_webhook() {}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Status), (status = 503, body = Status)))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
fn metrics() {}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key; its scope (checkout, entitlements, finance) decides what it may call",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "paygate", description = "Payments and order gateway of 职前通"),
    paths(plans, create_order, get_order, return_check, cancel_order, create_refund, get_refund,
        run_reconciliation, list_reconciliations, get_reconciliation, reconciliation_csv, entitlements, resume_access, events,
        create_erasure, get_erasure, wechatpay_webhook, alipay_webhook, healthz, readyz, metrics),
    components(schemas(CreateOrder, Order, PaymentRecord, CreateRefund, Refund, RunReconciliation,
        Reconciliation, Reconciliations, ErrorEnvelope, ErrorBody, OrderPaid,
        Plans, PlanEntry, GrantEntry, Entitlements, EntitlementEntry, ResumeAccess, AccessGranted,
        Events, EventEntry, CreateErasure, Erasure, Status)),
    modifiers(&BearerKey)
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

pub async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document(),
    )
}
