//! The finance and operations console at `/console` (DESIGN.md §7 console; issue 21): pages
//! rendered on the server (maud), plain forms, no script. People sign in as console users
//! (`crate::console_users`); what each sees and may do follows their scopes exactly as on the
//! API, and every action it starts names them (`console:<name>`).
//!
//! | route | scope | what |
//! |---|---|---|
//! | `GET/POST /console/sign-in`, `/console/sign-in/code`, `/console/enrol`, `/console/set-password` | — | the sign-in steps |
//! | `POST /console/sign-out` | — | ends the session |
//! | `GET /console` | any | overview |
//! | `GET /console/orders`, `/console/orders/{order_no}` | checkout, entitlements or finance | search, one order |
//! | `GET /console/orders/{order_no}/refund`, `POST …/refund/confirm`, `POST …/refund` | finance | refund |
//! | `GET /console/reconciliations`, `/console/reconciliations/{id}`, `…/discrepancies.csv`, `POST /console/reconciliations` | finance | reconciliation |
//! | `GET /console/erasures`, `POST /console/erasures/confirm`, `POST /console/erasures` | privacy | account deletion |
//! | `GET /console/operations` | any | jobs, event push, readiness, limits |

mod chart;
mod context;
mod erasures;
mod operations;
mod orders;
mod overview;
mod page;
mod reconciliation;
mod refund;
mod session;
mod sign_in;
mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;

pub use context::Console;
pub use session::{FORM_COOKIE, SESSION_COOKIE};

/// The console's routes, or `None` when `[console] enabled = false`.
pub fn router(app: &AppState, public_url: &str) -> Option<Router> {
    if !app.config.console.enabled {
        return None;
    }
    let console = Console {
        app: app.clone(),
        throttle: Arc::default(),
        secure: public_url.starts_with("https://"),
        idle: chrono::Duration::minutes(app.config.console.session_idle_minutes),
        past_days: Arc::default(),
    };
    let routes = Router::new()
        .route("/", get(overview::page))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route(
            "/sign-in/code",
            get(sign_in::code_form).post(sign_in::code_submit),
        )
        .route(
            "/enrol",
            get(sign_in::enrol_form).post(sign_in::enrol_submit),
        )
        .route(
            "/set-password",
            get(sign_in::password_form).post(sign_in::password_submit),
        )
        .route("/sign-out", post(sign_in::sign_out))
        .route("/orders", get(orders::list))
        .route("/orders/{order_no}", get(orders::one))
        .route(
            "/orders/{order_no}/refund",
            get(refund::form).post(refund::submit),
        )
        .route("/orders/{order_no}/refund/confirm", post(refund::confirm))
        .route(
            "/reconciliations",
            get(reconciliation::list).post(reconciliation::run_again),
        )
        .route("/reconciliations/{id}", get(reconciliation::one))
        .route(
            "/reconciliations/{id}/discrepancies.csv",
            get(reconciliation::csv),
        )
        .route("/erasures", get(erasures::list).post(erasures::submit))
        .route("/erasures/confirm", post(erasures::confirm))
        .route("/operations", get(operations::page))
        .route("/static/console.css", get(stylesheet))
        .fallback(|| async { page::Failure::NotFound("没有这个页面。".into()) })
        .with_state(console)
        .layer(axum::middleware::map_response(guarded))
        // Bounded as the API's routes are (DESIGN.md §13).
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            crate::config::LimitsConfig::ms(app.config.limits.request_timeout_ms),
        ));
    // Nested, so that its fallback (a page) answers for /console/… and the API's for the rest.
    let routes = Router::new().nest("/console", routes);
    Some(routes)
}

const STYLESHEET: &str = include_str!("static/console.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Only the console's own origin: no inline script or style, no frames, forms post back
/// here. Inline SVG (the chart, the QR code) is markup, not a resource: `'self'` is enough.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every console answer: the policy above; pages never cached (signing out and pressing back
/// shows nothing) and never sent as a referrer (the set-password link is in a URL).
async fn guarded(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h
        .get(header::CACHE_CONTROL)
        .is_some_and(|v| v.as_bytes().starts_with(b"public"))
    {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
