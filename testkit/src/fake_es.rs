//! A faithful Elasticsearch `_bulk` endpoint for tests, written from the Elasticsearch REST API
//! documentation, with fault injection.
//!
//! It runs a hyper server on `127.0.0.1:0` in a background thread (its own tokio runtime), so
//! synchronous tests can use it. What it does like a real cluster:
//! - `GET /` answers cluster info; every answer carries `X-Elastic-Product: Elasticsearch`.
//! - `POST /_bulk` and `POST /<index>/_bulk`: NDJSON actions (`index`, `create`, `delete`,
//!   `update`), the body must end with a newline (else 400 `illegal_argument_exception`),
//!   `Content-Encoding: gzip` bodies are decompressed, a body above the max content length
//!   (100 MB by default, settable) gets 413.
//! - per-item results in request order with the real shapes: `create` 201 `created`,
//!   `index` 201/200 `created`/`updated`, `create` on an existing `_id` 409
//!   `version_conflict_engine_exception`; `"errors"` true when any item failed.
//! - data streams (declared with [`FakeEs::add_data_stream`]) accept only `create` and need
//!   `@timestamp`.
//! - basic auth when required (401 `security_exception` otherwise).
//!
//! Faults: refuse connections for a while ([`FakeEs::set_down`]: the listening socket is
//! closed, so connects get ECONNREFUSED), whole-request errors for the next N requests
//! ([`FakeEs::fail_next_requests`]), 429 `es_rejected_execution_exception` on each `_id`'s first
//! N attempts ([`FakeEs::reject_first_attempts`]), 400 mapping errors for documents matching a
//! predicate ([`FakeEs::reject_docs_where`]).
//!
//! Accepted documents are stored by (index, `_id`) for exactly-once assertions.
use std::{
    collections::{HashMap, HashSet},
    io::Read,
    net::SocketAddr,
    sync::{Arc, Mutex},
    thread,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;

/// A stored document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The index (or data stream) it went to.
    pub index: String,
    /// Its `_id`.
    pub id: String,
    /// The document.
    pub source: Value,
}

/// What the endpoint saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// HTTP status of each `_bulk` request, in order.
    pub bulk_statuses: Vec<u16>,
    /// Items received (all attempts).
    pub items: u64,
    /// Items answered 409 (already present).
    pub conflicts: u64,
    /// Items answered 429.
    pub rejected_429: u64,
    /// Items answered 400.
    pub rejected_400: u64,
    /// Requests with `Content-Encoding: gzip`.
    pub gzip_requests: u64,
    /// Requests carrying a `filter_path` query parameter.
    pub filter_path_requests: u64,
    /// Largest decompressed body seen.
    pub max_body_bytes: usize,
    /// The `Authorization` headers seen (to check what a client sends).
    pub authorization: Vec<String>,
}

type Predicate = Box<dyn Fn(&Value) -> bool + Send>;

struct State {
    docs: HashMap<(String, String), Value>,
    order: Vec<(String, String)>,
    data_streams: HashSet<String>,
    max_content_length: usize,
    fail_next: u32,
    fail_status: u16,
    reject_first: u32,
    attempts: HashMap<String, u32>,
    mapping_error: Option<Predicate>,
    basic_auth: Option<String>,
    stats: Stats,
    next_auto_id: u64,
}

/// The running endpoint; stops when dropped.
pub struct FakeEs {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    down: watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeEs {
    /// Starts on a free loopback port.
    pub fn start() -> FakeEs {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake es");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            docs: HashMap::new(),
            order: Vec::new(),
            data_streams: HashSet::new(),
            max_content_length: 100 * 1024 * 1024,
            fail_next: 0,
            fail_status: 503,
            reject_first: 0,
            attempts: HashMap::new(),
            mapping_error: None,
            basic_auth: None,
            stats: Stats::default(),
            next_auto_id: 0,
        }));
        let (down_tx, down_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake es runtime");
            rt.block_on(async move {
                tokio::select! {
                    _ = serve(std_listener, addr, st, down_rx) => {}
                    _ = stop_rx => {}
                }
            });
        });
        FakeEs {
            addr,
            state,
            down: down_tx,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Down: the port is closed (connections refused) until set up again.
    pub fn set_down(&self, down: bool) {
        let _ = self.down.send(down);
        // Wait until the server acted on it, so the caller's next step sees the new state.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let refused = std::net::TcpStream::connect(self.addr).is_err();
            if refused == down {
                return;
            }
            thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The next `n` `_bulk` requests are answered `status` (503 by default) as a whole.
    pub fn fail_next_requests(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.fail_next = n;
        s.fail_status = status;
    }

    /// Each `_id`'s first `n` attempts are answered 429 `es_rejected_execution_exception`.
    pub fn reject_first_attempts(&self, n: u32) {
        self.lock().reject_first = n;
    }

    /// Documents for which `pred` holds are rejected with a 400 mapping error.
    pub fn reject_docs_where(&self, pred: impl Fn(&Value) -> bool + Send + 'static) {
        self.lock().mapping_error = Some(Box::new(pred));
    }

    /// Bodies larger than this (after decompression) get 413.
    pub fn set_max_content_length(&self, bytes: usize) {
        self.lock().max_content_length = bytes;
    }

    /// Requests must carry these basic-auth credentials.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        self.lock().basic_auth = Some(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ));
    }

    /// `name` is a data stream: only `create`, and `@timestamp` required.
    pub fn add_data_stream(&self, name: &str) {
        self.lock().data_streams.insert(name.to_string());
    }

    /// Every stored document, in the order first stored.
    pub fn docs(&self) -> Vec<Doc> {
        let s = self.lock();
        s.order
            .iter()
            .filter_map(|k| {
                s.docs.get(k).map(|v| Doc {
                    index: k.0.clone(),
                    id: k.1.clone(),
                    source: v.clone(),
                })
            })
            .collect()
    }

    /// How many documents are stored.
    pub fn doc_count(&self) -> usize {
        self.lock().docs.len()
    }

    /// What was seen so far.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeEs {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    std_listener: std::net::TcpListener,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    mut down: watch::Receiver<bool>,
) {
    let mut listener =
        Some(tokio::net::TcpListener::from_std(std_listener).expect("tokio listener"));
    loop {
        if *down.borrow() {
            listener = None;
        } else if listener.is_none() {
            // Back up: bind the same port again (SO_REUSEADDR is set by tokio).
            for _ in 0..500 {
                if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
                    listener = Some(l);
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        let accept = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = down.changed() => if changed.is_err() { return },
            conn = accept => {
                let Some((stream, _)) = conn else { continue };
                let st = state.clone();
                let down_at_accept = down.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &st).await) }
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    let mut down = down_at_accept;
                    // Going down also drops open connections, as a crashed node would.
                    tokio::select! {
                        _ = &mut conn => {}
                        _ = async { while !*down.borrow() { if down.changed().await.is_err() { break } } } => {}
                    }
                });
            }
        }
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-elastic-product", "Elasticsearch")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn error_body(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status
    })
}

async fn handle(req: Request<Incoming>, state: &Arc<Mutex<State>>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzip = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let raw = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                400,
                error_body(400, "parse_exception", "cannot read the request body"),
            )
        }
    };
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = &auth {
        st.stats.authorization.push(a.clone());
    }
    if let Some(expected) = &st.basic_auth {
        if auth.as_deref() != Some(expected.as_str()) {
            let reason = format!("missing authentication credentials for REST request [{path}]");
            let mut r = reply(401, error_body(401, "security_exception", &reason));
            r.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static(
                    "Basic realm=\"security\" charset=\"UTF-8\"",
                ),
            );
            return r;
        }
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET" | "HEAD", []) => reply(
            200,
            json!({
                "name": "fake-es-0", "cluster_name": "fake", "cluster_uuid": "fake-uuid",
                "version": {"number": "8.15.0", "build_flavor": "default", "lucene_version": "9.11.1"},
                "tagline": "You Know, for Search"
            }),
        ),
        ("POST" | "PUT", ["_bulk"]) => bulk(&mut st, None, &raw, gzip, &query),
        ("POST" | "PUT", [index, "_bulk"]) => bulk(&mut st, Some(index), &raw, gzip, &query),
        _ => reply(
            405,
            error_body(
                405,
                "illegal_argument_exception",
                &format!("no handler found for uri [{path}] and method [{method}]"),
            ),
        ),
    }
}

fn bulk(
    st: &mut State,
    url_index: Option<&str>,
    raw: &Bytes,
    gzip: bool,
    query: &str,
) -> Response<Full<Bytes>> {
    if query.split('&').any(|p| p.starts_with("filter_path")) {
        st.stats.filter_path_requests += 1;
    }
    let body = if gzip {
        st.stats.gzip_requests += 1;
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .is_err()
        {
            st.stats.bulk_statuses.push(400);
            return reply(
                400,
                error_body(
                    400,
                    "parse_exception",
                    "cannot decompress the gzip request body",
                ),
            );
        }
        out
    } else {
        raw.to_vec()
    };
    st.stats.max_body_bytes = st.stats.max_body_bytes.max(body.len());
    if body.len() > st.max_content_length {
        st.stats.bulk_statuses.push(413);
        return Response::builder()
            .status(413)
            .header("x-elastic-product", "Elasticsearch")
            .body(Full::new(Bytes::new()))
            .expect("response");
    }
    if st.fail_next > 0 {
        st.fail_next -= 1;
        let status = st.fail_status;
        st.stats.bulk_statuses.push(status);
        let (kind, reason) = match status {
            429 => (
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation",
            ),
            _ => (
                "cluster_block_exception",
                "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
            ),
        };
        return reply(status, error_body(status, kind, reason));
    }
    let fail = |st: &mut State, reason: &str| {
        st.stats.bulk_statuses.push(400);
        reply(400, error_body(400, "illegal_argument_exception", reason))
    };
    if body.is_empty() {
        st.stats.bulk_statuses.push(400);
        return reply(
            400,
            error_body(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;",
            ),
        );
    }
    if body.last() != Some(&b'\n') {
        return fail(st, "The bulk request must be terminated by a newline [\\n]");
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return fail(st, "the request body is not valid UTF-8");
    };
    // Parse the whole request first: a malformed action line fails it as a whole.
    let mut ops = Vec::new();
    let mut lines = text
        .split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((n, line)) = lines.next() {
        let Ok(Value::Object(action)) = serde_json::from_str::<Value>(line) else {
            return fail(
                st,
                &format!(
                    "Malformed action/metadata line [{}], expected START_OBJECT",
                    n + 1
                ),
            );
        };
        let Some((op, meta)) = action.into_iter().next() else {
            return fail(
                st,
                &format!(
                    "Malformed action/metadata line [{}], expected a field",
                    n + 1
                ),
            );
        };
        if !matches!(op.as_str(), "index" | "create" | "update" | "delete") {
            return fail(
                st,
                &format!("Malformed action/metadata line [{}], expected one of [create, delete, index, update] but found [{op}]", n + 1),
            );
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(url_index)
            .map(str::to_string);
        let Some(index) = index else {
            st.stats.bulk_statuses.push(400);
            return reply(
                400,
                error_body(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                ),
            );
        };
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_string);
        let source = if op == "delete" {
            None
        } else {
            match lines.next() {
                Some((_, doc)) => Some(doc.to_string()),
                None => return fail(st, &format!("The bulk request must be terminated by a newline [\\n] (action line [{}] has no source)", n + 1)),
            }
        };
        ops.push((op, index, id, source));
    }
    let mut items = Vec::with_capacity(ops.len());
    let mut errors = false;
    for (op, index, id, source) in ops {
        st.stats.items += 1;
        let item = item(st, &op, index, id, source);
        errors |= item["status"].as_u64().is_some_and(|s| s >= 300);
        items.push(json!({ op: item }));
    }
    st.stats.bulk_statuses.push(200);
    reply(200, json!({"took": 1, "errors": errors, "items": items}))
}

fn item(
    st: &mut State,
    op: &str,
    index: String,
    id: Option<String>,
    source: Option<String>,
) -> Value {
    let id = id.unwrap_or_else(|| {
        st.next_auto_id += 1;
        format!("auto-{}", st.next_auto_id)
    });
    let err = |status: u16, kind: &str, reason: String| {
        json!({"_index": index, "_id": id, "status": status,
               "error": {"type": kind, "reason": reason, "index": index, "shard": "0", "index_uuid": "fake-uuid"}})
    };
    if st.reject_first > 0 {
        let n = st.attempts.entry(id.clone()).or_insert(0);
        *n += 1;
        if *n <= st.reject_first {
            st.stats.rejected_429 += 1;
            return err(429, "es_rejected_execution_exception",
                "rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, primary_operation_bytes=512, max_coordinating_and_primary_bytes=0]".into());
        }
    }
    let data_stream = st.data_streams.contains(&index);
    if data_stream && op != "create" {
        st.stats.rejected_400 += 1;
        return err(
            400,
            "illegal_argument_exception",
            format!(
                "only write ops with an op_type of create are allowed in data streams [{index}]"
            ),
        );
    }
    let key = (index.clone(), id.clone());
    match op {
        "delete" => {
            let found = st.docs.remove(&key).is_some();
            return json!({"_index": index, "_id": id, "_version": 2, "result": if found {"deleted"} else {"not_found"},
                          "status": if found {200} else {404}});
        }
        "update" => {
            return err(
                400,
                "illegal_argument_exception",
                "update is not supported by this fake".into(),
            );
        }
        _ => {}
    }
    let source = source.unwrap_or_default();
    let doc = match serde_json::from_str::<Value>(&source) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            st.stats.rejected_400 += 1;
            return err(
                400,
                "document_parsing_exception",
                format!("[1:1] failed to parse: the document with id '{id}' is not a JSON object"),
            );
        }
    };
    if data_stream && doc.get("@timestamp").is_none() {
        st.stats.rejected_400 += 1;
        return err(
            400,
            "document_parsing_exception",
            "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing".into(),
        );
    }
    if st.mapping_error.as_ref().is_some_and(|p| p(&doc)) {
        st.stats.rejected_400 += 1;
        return err(400, "document_parsing_exception",
            format!("[1:42] failed to parse field [message] of type [long] in document with id '{id}'. Preview of field's value: 'text'"));
    }
    let exists = st.docs.contains_key(&key);
    if exists && op == "create" {
        st.stats.conflicts += 1;
        return err(
            409,
            "version_conflict_engine_exception",
            format!("[{id}]: version conflict, document already exists (current version [1])"),
        );
    }
    if !exists {
        st.order.push(key.clone());
    }
    st.docs.insert(key, doc);
    let (result, status, version) = if exists {
        ("updated", 200, 2)
    } else {
        ("created", 201, 1)
    };
    json!({"_index": index, "_id": id, "_version": version, "result": result,
           "_shards": {"total": 2, "successful": 1, "failed": 0},
           "_seq_no": st.docs.len() - 1, "_primary_term": 1, "status": status})
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn post(es: &FakeEs, path: &str, body: &[u8], headers: &str) -> crate::HttpResponse {
        let mut s = std::net::TcpStream::connect(es.addr()).unwrap();
        write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\n{headers}Content-Length: {}\r\n\r\n", body.len()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(a, b)| (a.trim().to_ascii_lowercase(), b.trim().to_string()))
            .collect();
        crate::HttpResponse {
            status,
            headers,
            body: body.to_string(),
        }
    }

    #[test]
    fn bulk_semantics() {
        let es = FakeEs::start();
        let r = post(&es, "/_bulk", b"{\"create\":{\"_index\":\"logs\",\"_id\":\"a\"}}\n{\"m\":1}\n{\"create\":{\"_index\":\"logs\",\"_id\":\"a\"}}\n{\"m\":1}\n", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["errors"], true);
        assert_eq!(v["items"][0]["create"]["status"], 201);
        assert_eq!(v["items"][1]["create"]["status"], 409);
        assert_eq!(
            v["items"][1]["create"]["error"]["type"],
            "version_conflict_engine_exception"
        );
        let r = post(
            &es,
            "/_bulk",
            b"{\"create\":{\"_index\":\"logs\",\"_id\":\"b\"}}\n{}",
            "",
        );
        assert_eq!(r.status, 400);
        assert!(r.body.contains("terminated by a newline"));
        es.add_data_stream("ds");
        let r = post(&es, "/ds/_bulk", b"{\"index\":{\"_id\":\"c\"}}\n{\"@timestamp\":\"x\"}\n{\"create\":{\"_id\":\"d\"}}\n{}\n", "");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["items"][0]["index"]["status"], 400);
        assert_eq!(v["items"][1]["create"]["status"], 400);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"create\":{\"_index\":\"logs\",\"_id\":\"e\"}}\n{\"m\":2}\n")
            .unwrap();
        let r = post(
            &es,
            "/_bulk",
            &gz.finish().unwrap(),
            "Content-Encoding: gzip\r\n",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(es.doc_count(), 2);
        es.set_max_content_length(10);
        assert_eq!(
            post(
                &es,
                "/_bulk",
                b"{\"create\":{\"_index\":\"logs\",\"_id\":\"f\"}}\n{}\n",
                ""
            )
            .status,
            413
        );
        es.set_max_content_length(1 << 20);
        es.require_basic_auth("elastic", "pw");
        assert_eq!(post(&es, "/_bulk", b"{}\n", "").status, 401);
        es.set_down(true);
        assert!(std::net::TcpStream::connect(es.addr()).is_err());
        es.set_down(false);
        let r = post(
            &es,
            "/_bulk",
            b"{\"create\":{\"_index\":\"logs\",\"_id\":\"g\"}}\n{}\n",
            "Authorization: Basic ZWxhc3RpYzpwdw==\r\n",
        );
        assert_eq!(r.status, 200);
    }
}
