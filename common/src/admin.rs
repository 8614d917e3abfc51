//! The admin HTTP server every agent runs on `--admin-addr`.
//!
//! Routes:
//! - `GET /healthz`: 200 `ok` while the process serves requests (liveness).
//! - `GET /readyz`: 200 `ok` when every readiness condition holds, else 503 with a one-line
//!   reason (`shutting down`, `sink: elasticsearch refused the connection`).
//! - `GET /metrics`: OpenMetrics text.
//! - Aliases an agent declares in [`crate::AgentInfo::admin_aliases`] (logship answers
//!   fluent-bit's `/api/v1/health` so existing probes keep working).
//!
//! `HEAD` works wherever `GET` does; other methods get 405. The server keeps answering during a
//! graceful shutdown (so probes see `/readyz` turn 503) and stops when the process exits.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, Method, Request, Response,
    StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{metrics::Metrics, readiness::Readiness, Error};

/// What an admin path serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Liveness.
    Health,
    /// Readiness.
    Ready,
    /// Metrics.
    Metrics,
}

/// What the admin server serves from.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Readiness conditions.
    pub readiness: Readiness,
    /// The registry.
    pub metrics: Arc<Metrics>,
    /// Extra paths.
    pub aliases: &'static [(&'static str, Endpoint)],
}

/// Binds the admin address; returns the listener so start-up fails early on a taken port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::AdminBind { addr, source })
}

/// Serves admin requests on `listener` until the process exits.
pub async fn serve(listener: TcpListener, state: AdminState) {
    let state = Arc::new(state);
    let mut backoff = crate::retry::Backoff::new(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(1),
    );
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                stream
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "admin server cannot accept a connection");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let endpoint = match path {
        "/healthz" | "/livez" => Some(Endpoint::Health),
        "/readyz" => Some(Endpoint::Ready),
        "/metrics" => Some(Endpoint::Metrics),
        _ => state
            .aliases
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, e)| *e),
    };
    let Some(endpoint) = endpoint else {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n",
        );
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut resp = match endpoint {
        Endpoint::Health => text(StatusCode::OK, "ok\n"),
        Endpoint::Ready => match state.readiness.check() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        Endpoint::Metrics => {
            let mut r = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
    };
    if req.method() == Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
