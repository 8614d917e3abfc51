//! Model-based test: seeded random sequences of writes, rotations, truncations, deletions
//! and restarts; every line exactly once, in order per file.
use std::{
    fs::{self, OpenOptions},
    io::Write,
    sync::{Arc, Mutex},
};

use rand::{rngs::SmallRng, Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::{rotation::assert_exactly_once_in_order, *};

/// A seeded random sequence of appends, rename-and-create rotations, copytruncates,
/// deletions, recreations and clean restarts, with acks in random order: every line must
/// arrive exactly once, in order within its file.
async fn model(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut c = cfg(d, "*.log*");
    c.data_dir = Some(data);
    c.max_batch_bytes = rng.random_range(1..4096);
    let start = |c: &TailConfig| Tailer::start(c.clone(), CancellationToken::new()).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (mut tailer, rx) = start(&c);
    let mut col = Collector::spawn_into(got.clone(), rx, tailer.acker(), Some(seed));
    let path = d.join("app.log");
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap()
    };
    let mut f = open();
    let mut rotated = std::collections::VecDeque::new();
    let mut n = 0;
    let mut ops = Vec::new();
    for step in 0..80 {
        let op = rng.random_range(0..12);
        ops.push(op);
        match op {
            0..=5 => {
                for _ in 0..rng.random_range(1..300) {
                    writeln!(f, "line {n}").unwrap();
                    n += 1;
                }
            }
            6 | 7 => {
                let to = d.join(format!("app.log.{step}"));
                fs::rename(&path, &to).unwrap();
                rotated.push_back(to);
                for _ in 0..rng.random_range(0..3) {
                    writeln!(f, "line {n}").unwrap();
                    n += 1;
                }
                f = open();
            }
            8 => {
                col.wait_len(n).await;
                fs::copy(&path, d.join(format!("copy.{step}"))).unwrap();
                f.set_len(0).unwrap();
            }
            9 => {
                col.wait_len(n).await;
                if let Some(old) = rotated.pop_front() {
                    fs::remove_file(old).unwrap();
                }
            }
            10 => {
                col.wait_len(n).await;
                fs::remove_file(&path).unwrap();
                f = open();
            }
            _ => {
                col.wait_len(n).await;
                wait_until("everything acked", || {
                    tailer.stats().iter().all(|s| s.lag_bytes == 0)
                })
                .await;
                tailer.finish().await.unwrap();
                col.task.await.unwrap();
                let rx;
                (tailer, rx) = start(&c);
                col = Collector::spawn_into(got.clone(), rx, tailer.acker(), Some(seed));
            }
        }
    }
    col.wait_len(n).await;
    assert_exactly_once_in_order(&got.lock().unwrap(), n);
    tailer.finish().await.unwrap();
    eprintln!("seed {seed}: {n} lines, ops {ops:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_based_random_sequences_deliver_every_line_once() {
    for seed in 1..=8 {
        model(seed).await;
    }
}
