//! Background work per route: re-resolving upstream names on the DNS TTL, optional active TCP
//! health checks, and keeping `/readyz` and the health gauges current.
use std::{sync::Arc, time::Duration};

use common::readiness::Condition;
use tokio::{net::TcpStream, sync::Notify};
use tokio_util::sync::CancellationToken;

use crate::{events, pool::Pool, resolve::Resolver};

/// How often a name with no address yet is retried.
const RETRY_EMPTY: Duration = Duration::from_secs(1);

async fn resolve_pool(resolver: &Resolver, pool: &Pool) -> bool {
    let mut any_empty = false;
    for up in &pool.upstreams {
        match resolver.resolve(&up.host, up.port).await {
            Ok(addrs) => {
                if up.set_addrs(addrs.clone()) {
                    events::AddressesChanged {
                        upstream: &up.label,
                        addrs: &addrs,
                    }
                    .emit();
                    pool.notify_changed();
                }
            }
            Err(error) => {
                events::ResolveFailed {
                    upstream: &up.label,
                    error: &error,
                }
                .emit();
                any_empty |= up.addrs().is_empty();
            }
        }
    }
    pool.refresh_gauges();
    any_empty
}

/// Resolves every route's upstreams once (at start, before the listeners accept).
pub async fn resolve_all(resolver: &Resolver, pools: &[Arc<Pool>]) {
    for pool in pools {
        resolve_pool(resolver, pool).await;
    }
}

/// Re-resolves the pool's names every `ttl` (every second while a name has no address).
pub async fn re_resolve(
    pool: Arc<Pool>,
    resolver: Resolver,
    ttl: Duration,
    stop: CancellationToken,
) {
    let mut wait = ttl;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        let empty = resolve_pool(&resolver, &pool).await;
        wait = if empty { RETRY_EMPTY.min(ttl) } else { ttl };
    }
}

/// Connects to each upstream every `interval`: a success puts it back in rotation, a failure
/// counts like a failed client connect.
pub async fn health_checks(
    pool: Arc<Pool>,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
        for up in &pool.upstreams {
            let addrs = up.addrs();
            if addrs.is_empty() {
                continue;
            }
            let mut ok = false;
            for addr in addrs {
                if let Ok(Ok(_)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                    ok = true;
                    break;
                }
            }
            if ok {
                pool.record_success(up);
            } else {
                pool.record_failure(up);
            }
        }
    }
}

/// Keeps each route's readiness condition (at least one upstream in rotation) and the health
/// gauges current: it looks again when `changed` says an upstream left or rejoined the rotation
/// or its addresses changed, and when a cool-down ends. No polling: an idle agent sleeps.
pub async fn readiness(
    pools: Vec<Arc<Pool>>,
    conditions: Vec<Condition>,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut last: Vec<Option<bool>> = vec![None; pools.len()];
    loop {
        for ((pool, cond), last) in pools.iter().zip(&conditions).zip(last.iter_mut()) {
            let ok = pool.any_healthy();
            if *last != Some(ok) {
                if ok {
                    cond.set_ready();
                } else {
                    cond.set_not_ready("no upstream in rotation (all ejected or unresolved)");
                }
                *last = Some(ok);
            }
            pool.refresh_gauges();
        }
        let next = pools.iter().filter_map(|p| p.next_readmission()).min();
        let readmission = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = changed.notified() => {}
            _ = readmission => {}
            _ = stop.cancelled() => return,
        }
    }
}
