//! Tests of the tailer against real files: new files and excludes, start position, restart
//! from checkpoints, out-of-order acks, backpressure, partial and long lines, invalid UTF-8,
//! inotify alone, idleness. Rotation in `tests/rotation.rs`, the model-based test in
//! `tests/model.rs`.
use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::{rngs::SmallRng, seq::SliceRandom, SeedableRng};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::*;

mod model;
mod rotation;

/// Bounded wait for conditions (real time).
const DEADLINE: Duration = Duration::from_secs(20);

fn cfg(dir: &Path, pattern: &str) -> TailConfig {
    let mut c = TailConfig::new(vec![dir.join(pattern).to_string_lossy().into_owned()]);
    c.rescan_interval = Duration::from_millis(100);
    c.checkpoint_interval = Duration::from_millis(50);
    c.partial_line_timeout = Duration::from_secs(5);
    c
}

fn append(path: &Path, text: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

/// What the collector saw: one entry per line.
#[derive(Debug, Clone)]
struct Got {
    path: PathBuf,
    fingerprint: u64,
    line: Line,
}

/// Receives every chunk, records its lines and acknowledges it.
struct Collector {
    got: Arc<Mutex<Vec<Got>>>,
    task: JoinHandle<()>,
}

impl Collector {
    fn spawn(rx: mpsc::Receiver<Chunk>, acker: Acker) -> Self {
        Self::spawn_into(Arc::new(Mutex::new(Vec::new())), rx, acker, None)
    }

    /// With a seed, the chunks waiting at once are acknowledged in a shuffled order.
    fn spawn_into(
        got: Arc<Mutex<Vec<Got>>>,
        mut rx: mpsc::Receiver<Chunk>,
        acker: Acker,
        seed: Option<u64>,
    ) -> Self {
        let g = got.clone();
        let task = tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed.unwrap_or(0));
            while let Some(chunk) = rx.recv().await {
                let mut batch = vec![chunk];
                while let Ok(c) = rx.try_recv() {
                    batch.push(c);
                }
                let mut tokens = Vec::new();
                let mut g = g.lock().unwrap();
                for chunk in batch {
                    for line in chunk.lines {
                        g.push(Got {
                            path: chunk.file.path.clone(),
                            fingerprint: chunk.file.fingerprint,
                            line,
                        });
                    }
                    tokens.push(chunk.ack);
                }
                drop(g);
                if seed.is_some() {
                    tokens.shuffle(&mut rng);
                }
                for t in tokens {
                    acker.ack(t);
                }
            }
        });
        Self { got, task }
    }

    fn texts(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.line.text.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    async fn wait_len(&self, n: usize) {
        wait_until(&format!("{n} lines"), || self.len() >= n).await;
        assert_eq!(
            self.len(),
            n,
            "more lines than expected: {:?}",
            self.texts()
        );
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn checkpoint(dir: &Path) -> Vec<checkpoint::Entry> {
    let Ok(text) = fs::read(dir.join(CHECKPOINT_FILE)) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["version"], 1);
    serde_json::from_value(v["files"].clone()).unwrap()
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_existing_and_new_files_with_excludes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("a.log"), b"one\ntwo\n");
    append(&d.join("skip.log"), b"excluded\n");
    append(&d.join("other.txt"), b"not matched\n");
    let mut c = cfg(d, "*.log");
    c.exclude = vec!["skip*".into()];
    let token = CancellationToken::new();
    let (tailer, rx) = Tailer::start(c, token.clone()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(2).await;
    append(&d.join("b.log"), b"three\n");
    append(&d.join("a.log"), b"four\n");
    col.wait_len(4).await;
    let mut t = col.texts();
    t.sort();
    assert_eq!(t, vec!["four", "one", "three", "two"]);
    let stats = tailer.stats();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].path, d.join("a.log"));
    wait_until("a.log acked", || tailer.stats()[0].acked_offset == 13).await;
    assert_eq!(tailer.stats()[0].lag_bytes, 0);
    token.cancel();
    tailer.finish().await.unwrap();
    col.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_end_skips_existing_content_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("a.log"), b"old\n");
    let mut c = cfg(d, "*.log");
    c.start_at = StartAt::End;
    let (tailer, rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    append(&d.join("a.log"), b"new\n");
    append(&d.join("b.log"), b"later file from head\n");
    col.wait_len(2).await;
    let mut t = col.texts();
    t.sort();
    assert_eq!(t, vec!["later file from head", "new"]);
    assert_eq!(
        col.got
            .lock()
            .unwrap()
            .iter()
            .find(|g| g.line.text == "new")
            .unwrap()
            .line
            .offset,
        4
    );
    tailer.finish().await.unwrap();
}

/// Receives `n` chunks without acknowledging them.
async fn recv_chunks(rx: &mut mpsc::Receiver<Chunk>, n: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    while out.len() < n {
        let c = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_crash_resumes_exactly_at_the_acked_offset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    append(&d.join("app.log"), lines(0..1000).as_bytes());
    let mut c = cfg(d, "*.log");
    c.data_dir = Some(data.clone());
    c.max_batch_bytes = 500;
    let token = CancellationToken::new();
    let (tailer, mut rx) = Tailer::start(c.clone(), token.clone()).unwrap();
    let acker = tailer.acker();
    let mut chunks = recv_chunks(&mut rx, 6).await;
    let later = chunks.split_off(3);
    let acked_end = chunks[2].ack.end_offset();
    let next_line = later[0].lines[0].clone();
    assert_eq!(next_line.offset, acked_end);
    for ch in chunks {
        acker.ack(ch.ack);
    }
    wait_until("periodic checkpoint", || {
        checkpoint(&data)
            .first()
            .is_some_and(|e| e.offset == acked_end)
    })
    .await;
    // Crash: no finish(), the un-acked chunks are lost in flight.
    token.cancel();
    drop(tailer);
    drop(later);
    drop(rx);
    // Renamed while down: still recognised by its identity.
    fs::rename(d.join("app.log"), d.join("renamed.log")).unwrap();
    let (tailer, rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    let rest = 1000 - next_line.text[5..].parse::<usize>().unwrap();
    col.wait_len(rest).await;
    let got = col.got.lock().unwrap().clone();
    assert_eq!(got[0].line, next_line);
    assert_eq!(got[0].path, d.join("renamed.log"));
    assert_eq!(got.last().unwrap().line.text, "line 999");
    tailer.finish().await.unwrap();
    assert_eq!(
        checkpoint(&data)[0].offset,
        fs::metadata(d.join("renamed.log")).unwrap().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_acks_checkpoint_only_the_contiguous_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    append(&d.join("app.log"), lines(0..100).as_bytes());
    let mut c = cfg(d, "*.log");
    c.data_dir = Some(data.clone());
    c.max_batch_bytes = 100;
    let (tailer, mut rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let acker = tailer.acker();
    let mut ch = recv_chunks(&mut rx, 3).await;
    let ends: Vec<u64> = ch.iter().map(|c| c.ack.end_offset()).collect();
    let c2 = ch.pop().unwrap();
    let c1 = ch.pop().unwrap();
    let c0 = ch.pop().unwrap();
    acker.ack(c2.ack);
    acker.ack(c0.ack);
    wait_until("checkpoint at the first chunk", || {
        checkpoint(&data)
            .first()
            .is_some_and(|e| e.offset == ends[0])
    })
    .await;
    assert_eq!(tailer.stats()[0].acked_offset, ends[0]);
    acker.ack(c1.ack);
    assert_eq!(tailer.stats()[0].acked_offset, ends[2]);
    tailer.finish().await.unwrap();
    assert_eq!(checkpoint(&data)[0].offset, ends[2]);
}

#[tokio::test(start_paused = true)]
async fn partial_line_is_flushed_after_the_timeout_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("app.log");
    append(&path, b"first\nno newline yet");
    let (tailer, mut rx) = Tailer::start(cfg(d, "*.log"), CancellationToken::new()).unwrap();
    let start = Instant::now();
    let c = rx.recv().await.unwrap();
    assert_eq!(c.lines[0].text, "first");
    assert!(!c.lines[0].partial);
    let c = rx.recv().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "held until the timeout"
    );
    assert_eq!(
        (
            c.lines[0].offset,
            c.lines[0].text.as_str(),
            c.lines[0].partial
        ),
        (6, "no newline yet", true)
    );
    append(&path, b", now the rest\nnext\n");
    let c = rx.recv().await.unwrap();
    let got: Vec<_> = c
        .lines
        .iter()
        .map(|l| (l.offset, l.text.as_str(), l.partial))
        .collect();
    assert_eq!(
        got,
        vec![(20, ", now the rest", false), (35, "next", false)]
    );
    tailer.finish().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ten_mib_line_is_split_into_marked_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut big: Vec<u8> = "é".repeat(5 * 1024 * 1024).into_bytes();
    big.extend_from_slice(b"\nafter\n");
    append(&d.join("app.log"), &big);
    let mut c = cfg(d, "*.log");
    c.max_line_bytes = 1024 * 1024;
    c.max_in_flight_bytes = 2 * 1024 * 1024;
    let (tailer, mut rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let acker = tailer.acker();
    let mut pieces = Vec::new();
    while pieces.last().is_none_or(|l: &Line| l.text != "after") {
        let chunk = rx.recv().await.unwrap();
        // Memory bounded: never more than the budget plus one chunk un-acked.
        assert!(tailer.stats()[0].read_offset - tailer.stats()[0].acked_offset <= 4 * 1024 * 1024);
        pieces.extend(chunk.lines);
        acker.ack(chunk.ack);
    }
    let after = pieces.pop().unwrap();
    assert!(!after.truncated);
    assert_eq!(pieces.len(), 10);
    let mut offset = 0;
    for p in &pieces {
        assert!(p.truncated && !p.invalid_utf8 && !p.partial);
        assert!(p.text.len() <= 1024 * 1024 && p.text.chars().all(|c| c == 'é'));
        assert_eq!(p.offset, offset);
        offset += p.text.len() as u64;
    }
    assert_eq!(after.offset, offset + 1);
    tailer.finish().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reading_pauses_while_nothing_is_acked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let total = lines(0..200_000);
    append(&d.join("app.log"), total.as_bytes());
    let mut c = cfg(d, "*.log");
    c.max_in_flight_bytes = 1024 * 1024;
    c.max_batch_bytes = 64 * 1024;
    let (tailer, mut rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let acker = tailer.acker();
    let mut held = Vec::new();
    // Let the reader run as far as it can (simulated minutes pass: many rescans).
    // Draining the channel lets the chunks of the block in progress through, no more.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(120)).await;
        while let Ok(c) = rx.try_recv() {
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        rx.try_recv().is_err(),
        "nothing more while nothing is acked"
    );
    let read = tailer.stats()[0].read_offset;
    assert!(
        read <= 1024 * 1024 + 256 * 1024,
        "read {read} bytes with 1 MiB in flight"
    );
    assert!(read < total.len() as u64);
    let mut n: usize = held.iter().map(|c| c.lines.len()).sum();
    for c in held {
        acker.ack(c.ack);
    }
    while n < 200_000 {
        let c = rx.recv().await.unwrap();
        n += c.lines.len();
        acker.ack(c.ack);
    }
    assert_eq!(n, 200_000);
    let s = &tailer.stats()[0];
    assert_eq!(
        (s.read_offset, s.acked_offset, s.lag_bytes),
        (total.len() as u64, total.len() as u64, 0)
    );
    tailer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_replaced_and_marked_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log"), b"ok\nbad \xff\xfe here\n\xc3\n");
    let (tailer, rx) = Tailer::start(cfg(d, "*.log"), CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(3).await;
    let got: Vec<_> = col
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|g| (g.line.text.clone(), g.line.invalid_utf8))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ok".into(), false),
            ("bad \u{fffd}\u{fffd} here".into(), true),
            ("\u{fffd}".into(), true)
        ]
    );
    tailer.finish().await.unwrap();
}

#[tokio::test]
async fn errors_name_the_bad_input_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tailer::start(
        TailConfig::new(vec!["/x/{a".into()]),
        CancellationToken::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/x/{a") && err.contains("fix the pattern"),
        "{err}"
    );
    let mut c = TailConfig::new(vec!["/x/*.log".into()]);
    c.exclude = vec!["[".into()];
    assert!(Tailer::start(c, CancellationToken::new())
        .unwrap_err()
        .to_string()
        .contains("\"[\""));
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let mut c = TailConfig::new(vec!["/x/*.log".into()]);
    c.data_dir = Some(file.join("data"));
    let err = Tailer::start(c, CancellationToken::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("file/data") && err.contains("writable"),
        "{err}"
    );
    let mut c = TailConfig::new(vec!["/x/*.log".into()]);
    c.max_line_bytes = 0;
    let err = Tailer::start(c, CancellationToken::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_line_bytes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inotify_alone_follows_new_files_and_symlink_targets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("links")).unwrap();
    fs::create_dir_all(d.join("real")).unwrap();
    append(&d.join("real/a.log"), b"");
    std::os::unix::fs::symlink(d.join("real/a.log"), d.join("links/a.log")).unwrap();
    let mut c = cfg(&d.join("links"), "*.log");
    // No rescan during the test: only inotify can bring the lines.
    c.rescan_interval = Duration::from_secs(3600);
    let (tailer, rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    append(&d.join("real/a.log"), b"through the symlink\n");
    col.wait_len(1).await;
    append(&d.join("real/b.log"), b"new file\n");
    std::os::unix::fs::symlink(d.join("real/b.log"), d.join("links/b.log")).unwrap();
    col.wait_len(2).await;
    append(&d.join("real/b.log"), b"appended\n");
    col.wait_len(3).await;
    let got = col.got.lock().unwrap().clone();
    assert_eq!(got[0].path, d.join("links/a.log"));
    assert_eq!(got[2].path, d.join("links/b.log"));
    assert_eq!(got[2].line.text, "appended");
    tailer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_beats_start_at_end_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    append(&d.join("a.log"), b"old\n");
    append(&d.join("empty.log"), b"");
    let mut c = cfg(d, "*.log");
    c.data_dir = Some(data.clone());
    c.start_at = StartAt::End;
    let token = CancellationToken::new();
    let (tailer, rx) = Tailer::start(c.clone(), token.clone()).unwrap();
    // Both files are recorded before anything was read: where reading starts is durable.
    wait_until("start positions checkpointed", || {
        let cp = checkpoint(&data);
        cp.len() == 2 && cp[0].offset == 4 && cp[1].offset == 0 && cp[1].head_len == 0
    })
    .await;
    token.cancel();
    drop((tailer, rx));
    // Written while down: must not be skipped by start_at = End.
    append(&d.join("a.log"), b"new\n");
    append(&d.join("empty.log"), b"first\n");
    let (tailer, rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(2).await;
    let mut got: Vec<(String, u64)> = col
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|g| (g.line.text.clone(), g.line.offset))
        .collect();
    got.sort();
    assert_eq!(got, vec![("first".into(), 0), ("new".into(), 4)]);
    tailer.finish().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_reader_only_wakes_for_its_rescans() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("a.log"), b"one\ntwo\nheld");
    let mut c = cfg(d, "*.log");
    c.rescan_interval = Duration::from_secs(1);
    let (tailer, mut rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let acker = tailer.acker();
    let chunk = rx.recv().await.unwrap();
    acker.ack(chunk.ack);
    let chunk = rx.recv().await.unwrap();
    assert!(chunk.lines[0].partial);
    acker.ack(chunk.ack);
    let before = tailer.rounds();
    // Ten simulated minutes of nothing happening: one round per rescan, not a spin.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let rounds = tailer.rounds() - before;
    assert!(
        (590..=610).contains(&rounds),
        "{rounds} rounds in 600 s idle"
    );
    tailer.finish().await.unwrap();
}
