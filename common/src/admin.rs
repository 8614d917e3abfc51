//! The admin HTTP server every agent runs on `--admin-addr`.
//!
//! Routes:
//! - `GET /healthz`: 200 `ok` while the process serves requests (liveness).
//! - `GET /readyz`: 200 `ok` when every readiness condition holds, else 503 with a one-line
//!   reason (`shutting down`, `sink: elasticsearch refused the connection`).
//! - `GET /metrics`: OpenMetrics text.
//! - `POST /quitquitquit` (unless `--quit-endpoint false`): starts the graceful shutdown, as
//!   SIGTERM does, so a Job's main container can stop its sidecars when it is done (Cloud SQL
//!   proxy and Istio answer the same path). Only from loopback, that is from a container of
//!   the same pod: 403 for anyone else, since the admin port listens on every interface for
//!   the kubelet's probes.
//! - Aliases an agent declares in [`crate::AgentInfo::admin_aliases`] (logship answers
//!   fluent-bit's `/api/v1/health` so existing probes keep working).
//!
//! `HEAD` works wherever `GET` does; other methods get 405 (`/quitquitquit`: POST only). The server keeps answering during a
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
    /// Graceful shutdown on request.
    Quit,
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
    /// What `POST /quitquitquit` starts (None: the endpoint is off).
    pub quit: Option<crate::shutdown::Shutdown>,
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
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff.reset();
                accepted
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
                async move { Ok::<_, Infallible>(route(&state, &req, peer)) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// True for a client on this host's loopback: with a pod's shared network namespace, a
/// container of the same pod.
fn from_loopback(peer: SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

fn route(state: &AdminState, req: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let endpoint = match path {
        "/healthz" | "/livez" => Some(Endpoint::Health),
        "/readyz" => Some(Endpoint::Ready),
        "/metrics" => Some(Endpoint::Metrics),
        "/quitquitquit" if state.quit.is_some() => Some(Endpoint::Quit),
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
    let read_only = req.method() == Method::GET || req.method() == Method::HEAD;
    let mut resp = match endpoint {
        Endpoint::Quit => return quit(state, req.method(), peer),
        _ if !read_only => return not_allowed("GET, HEAD", "method not allowed: use GET\n"),
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

/// `/quitquitquit`: POST from loopback starts the graceful shutdown.
fn quit(state: &AdminState, method: &Method, peer: SocketAddr) -> Response<Full<Bytes>> {
    if method != Method::POST {
        return not_allowed(
            "POST",
            "method not allowed: use POST /quitquitquit to shut down\n",
        );
    }
    if !from_loopback(peer) {
        tracing::warn!(client = %peer, "refused /quitquitquit from outside the pod");
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: /quitquitquit answers only loopback clients (a container of the same pod: use localhost)\n",
        );
    }
    let Some(shutdown) = &state.quit else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if !shutdown.is_triggered() {
        tracing::info!(client = %peer, "shutdown started by POST /quitquitquit");
        crate::shutdown::start(shutdown, &state.readiness);
    }
    text(StatusCode::OK, "shutting down\n")
}

/// 405 with the methods the path takes.
fn not_allowed(allow: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, body);
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
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

#[cfg(test)]
mod tests {
    use super::from_loopback;

    #[test]
    fn only_loopback_clients_may_quit() {
        for ok in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(from_loopback(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "10.0.0.7:1",
            "192.168.1.2:1",
            "[fe80::1]:1",
            "[::ffff:10.0.0.7]:1",
        ] {
            assert!(!from_loopback(no.parse().unwrap()), "{no}");
        }
    }
}
