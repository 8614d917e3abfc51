//! Rotation tests: rename-and-create (in and out of the globs) and copytruncate under a busy
//! writer, rewrite in place, deletion, inode reuse.
use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::MetadataExt,
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::*;

/// Checks every line `line N` 0..n arrived exactly once and in order within each file.
pub(super) fn assert_exactly_once_in_order(got: &[Got], n: usize) {
    let mut seen = vec![0u32; n];
    let mut last: std::collections::HashMap<u64, usize> = Default::default();
    for g in got {
        let i: usize = g.line.text.strip_prefix("line ").unwrap().parse().unwrap();
        seen[i] += 1;
        if let Some(prev) = last.insert(g.fingerprint, i) {
            assert!(prev < i, "line {i} after {prev} in the same file");
        }
    }
    let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c != 1).collect();
    assert!(wrong.is_empty(), "lines not seen exactly once: {wrong:?}");
}

async fn rename_create_rotation(pattern: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (tailer, rx) = Tailer::start(cfg(&d, pattern), CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    const N: usize = 20_000;
    // A file renamed out of the globs before the tailer ever saw it cannot be followed (as
    // with any tailer): when rotated files leave the globs, the writer rotates only once the
    // current file's first line arrived. Everything else runs at full speed.
    let must_be_seen = pattern == "app.log";
    let got = col.got.clone();
    let writer = std::thread::spawn(move || {
        let seen = |line: usize| {
            let deadline = std::time::Instant::now() + DEADLINE;
            let text = format!("line {line}");
            while !got.lock().unwrap().iter().any(|g| g.line.text == text) {
                assert!(std::time::Instant::now() < deadline, "{text} never arrived");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let mut first = 0;
        let path = d.join("app.log");
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap()
        };
        let mut f = open();
        let mut i = 0;
        while i < N {
            writeln!(f, "line {i}").unwrap();
            i += 1;
            if i % 3000 == 0 {
                if must_be_seen {
                    seen(first);
                }
                // logrotate: rename; the app writes a little more to the old descriptor,
                // then reopens the path.
                fs::rename(&path, d.join(format!("app.log.{i}"))).unwrap();
                for _ in 0..5 {
                    writeln!(f, "line {i}").unwrap();
                    i += 1;
                }
                f = open();
                first = i;
            }
        }
    });
    while !writer.is_finished() {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.join().unwrap();
    col.wait_len(N).await;
    assert_exactly_once_in_order(&col.got.lock().unwrap(), N);
    if pattern == "app.log" {
        wait_until("rotated files let go", || tailer.stats().len() == 1).await;
    } else {
        assert_eq!(tailer.stats().len(), 7);
    }
    tailer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_create_rotation_out_of_the_globs_loses_nothing() {
    // Only app.log matches: rotated files leave the globs and must be read to their end.
    rename_create_rotation("app.log").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_create_rotation_within_the_globs_loses_nothing() {
    // Rotated names match too: they are the same files under new names, not new files.
    rename_create_rotation("app.log*").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_under_a_writer_restarts_at_zero_as_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("app.log");
    let (tailer, rx) = Tailer::start(cfg(d, "*.log"), CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut n = 0;
    for round in 0..4 {
        for _ in 0..2000 + round * 500 {
            writeln!(f, "line {n}").unwrap();
            n += 1;
        }
        // copytruncate: copy (to a name the globs do not match), then truncate in place
        // once the tailer has read everything (what it had not read would be lost anyway).
        col.wait_len(n).await;
        fs::copy(&path, d.join("app.log.1")).unwrap();
        f.set_len(0).unwrap();
    }
    for _ in 0..100 {
        writeln!(f, "line {n}").unwrap();
        n += 1;
    }
    col.wait_len(n).await;
    let got = col.got.lock().unwrap().clone();
    assert_exactly_once_in_order(&got, n);
    let mut fps: Vec<(u64, u64, &str)> = got
        .iter()
        .map(|g| (g.fingerprint, g.line.offset, g.line.text.as_str()))
        .collect();
    fps.dedup_by_key(|f| f.0);
    assert_eq!(
        fps.len(),
        5,
        "each truncation starts a new file identity: {fps:?}"
    );
    // After each truncation the offsets start again at 0.
    assert_eq!(got.iter().filter(|g| g.line.offset == 0).count(), 5);
    tailer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_file_longer_than_before_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("app.log");
    append(&path, b"aaaa\n");
    let (tailer, rx) = Tailer::start(cfg(d, "*.log"), CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(1).await;
    // Truncate and write more than was there, in one go: the size alone cannot tell, the
    // first bytes can.
    fs::write(&path, b"bbbbbbbb\ncc\n").unwrap();
    col.wait_len(3).await;
    let got = col.got.lock().unwrap().clone();
    assert_eq!(got[1].line.text, "bbbbbbbb");
    assert_eq!(got[1].line.offset, 0);
    assert_ne!(got[0].fingerprint, got[1].fingerprint);
    tailer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_file_is_read_to_its_end_then_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("app.log");
    append(&path, &lines(0..10).into_bytes());
    let (tailer, rx) = Tailer::start(cfg(d, "*.log"), CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(10).await;
    // Writes then deletion, faster than the tailer looks: the open descriptor still reads.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(lines(10..5000).as_bytes()).unwrap();
    fs::remove_file(&path).unwrap();
    f.write_all(b"line 5000\nline 5001").unwrap();
    drop(f);
    col.wait_len(5002).await;
    let got = col.got.lock().unwrap().clone();
    let last = got.last().unwrap();
    assert_eq!(last.line.text, "line 5001");
    assert!(
        last.line.partial,
        "held partial line emitted when the file is let go"
    );
    wait_until("deleted file let go", || tailer.stats().is_empty()).await;
    tailer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inode_reuse_with_other_content_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let path = d.join("app.log");
    append(&path, b"new content in an old inode\n");
    let meta = fs::metadata(&path).unwrap();
    // A checkpoint left by an earlier file with the same device and inode, other content.
    fs::create_dir_all(&data).unwrap();
    let old_fp = fingerprint::fingerprint(meta.dev(), meta.ino(), b"old content!", 0);
    let doc = serde_json::json!({"version": 1, "files": [{
        "fingerprint": format!("{old_fp:016x}"), "path": path, "offset": 20,
        "dev": meta.dev(), "inode": meta.ino(), "head_len": 12,
        "head_crc": crc32fast::hash(b"old content!")}]});
    fs::write(data.join(CHECKPOINT_FILE), doc.to_string()).unwrap();
    let mut c = cfg(d, "*.log");
    c.data_dir = Some(data.clone());
    c.start_at = StartAt::Head;
    let (tailer, rx) = Tailer::start(c, CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(1).await;
    let got = col.got.lock().unwrap()[0].clone();
    assert_eq!(got.line.offset, 0, "not resumed at the old file's offset");
    assert_eq!(got.line.text, "new content in an old inode");
    assert_ne!(got.fingerprint, old_fp);
    tailer.finish().await.unwrap();
    let cp = checkpoint(&data);
    assert_eq!(cp.len(), 1);
    assert_eq!(cp[0].offset, 28);
    assert_eq!(cp[0].fingerprint, format!("{:016x}", got.fingerprint));

    // And while running: delete and recreate (the inode is often reused at once).
    let (tailer, rx) = Tailer::start(cfg(d, "*.log"), CancellationToken::new()).unwrap();
    let col = Collector::spawn(rx, tailer.acker());
    col.wait_len(1).await;
    fs::remove_file(&path).unwrap();
    append(&path, b"second file\n");
    col.wait_len(2).await;
    let got = col.got.lock().unwrap().clone();
    assert_eq!(got[1].line.text, "second file");
    assert_eq!(got[1].line.offset, 0);
    assert_ne!(got[0].fingerprint, got[1].fingerprint);
    tailer.finish().await.unwrap();
}
