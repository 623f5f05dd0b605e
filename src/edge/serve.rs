//! [`serve`]: the accept loop, hyper's HTTP/1 builder and the tower stack around the router.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

use super::body::{BodyLimits, body_limit};
use super::shape::one_shape;
use super::{admission, wire};
use crate::config::LimitsConfig;

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish. HTTP/1.1 only (what the providers and the platform speak), so the header-read
/// timeout holds for every connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &LimitsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Outside the router so the budgets are one for the whole process (Router::layer would
    // give each route its own); the body check before admission, so an oversized request
    // takes no slot; one_shape outermost, so every refusal is shaped.
    let body_limits = BodyLimits {
        api: limits.api_body_bytes,
        webhook: limits.webhook_body_bytes,
    };
    let admission = Arc::new(admission::Admission::new(limits));
    let service = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(one_shape))
        .layer(axum::middleware::from_fn_with_state(
            body_limits,
            body_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            admission,
            admission::admit,
        ))
        .service(router);

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(LimitsConfig::ms(limits.header_read_timeout_ms))
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the permit returns.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let exchanges = Arc::new(wire::Exchanges::default());
        let stream = wire::Wire::new(stream, exchanges.clone());
        let service =
            service
                .clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    // Before hyper can write its answer: see `wire`.
                    exchanges.request(request.method() == axum::http::Method::HEAD);
                    let mut request = request.map(Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
