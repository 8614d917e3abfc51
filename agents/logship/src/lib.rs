//! Tails log files and ships them to Elasticsearch or OpenSearch (stdout NDJSON when none is
//! given), with nothing lost: a fluent-bit replacement for the log collection sidecar.
//!
//! # Layout (Vector's shape)
//! - [`config`]: flags and env, validated into [`config::Settings`].
//! - [`fluentbit`]: `--fluent-bit-config`, a fluent-bit classic config mapped to the options.
//! - [`record`]: the record shape (ECS: `@timestamp`, `message`, `log.file.path`, static
//!   fields), documented there; [`parse`] adds log2json's formats (`--parse`).
//! - [`pipeline`]: tailer chunks -> records -> batches -> sink, and the acknowledgements that
//!   keep checkpoints behind delivery.
//! - [`sink`]: stdout (the embedded default) and Elasticsearch `_bulk` (encoder, request,
//!   service, retry, response); [`dlq`]: the dead-letter file.
//! - [`metrics`] and [`events`]: what `/metrics` shows and the log lines that go with it.
//!
//! Reading is `common::tail` (globs, inotify plus polling, rotation, fingerprints,
//! checkpoints under `--data-dir`).
use std::{
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    admin::Endpoint,
    runtime::Build,
    tail::{TailConfig, TailError, Tailer},
    Agent, AgentInfo, Context, Flavor,
};
use tokio_util::sync::CancellationToken;

pub mod config;
pub mod dlq;
pub mod events;
pub mod fluentbit;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod record;
pub mod sink;

pub use config::Config;
use config::Settings;
use metrics::{Metrics, StatsSource};

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem (the message names the option, the value and what is expected).
    #[error("{0}")]
    Config(String),
    /// From the shared machinery (secret files).
    #[error(transparent)]
    Common(common::Error),
    /// The tailer could not start or finish.
    #[error(transparent)]
    Tail(#[from] TailError),
}

/// The agent.
pub struct Logship {
    settings: Settings,
    metrics: Metrics,
    tailer: Arc<Mutex<Option<Tailer>>>,
    rx: tokio::sync::mpsc::Receiver<common::tail::Chunk>,
    read_stop: CancellationToken,
    sink: sink::Sink,
    abandon: CancellationToken,
}

impl std::fmt::Debug for Logship {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logship")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// fluent-bit's HTTP server paths, so existing probes keep working after the image swap.
const ALIASES: &[(&str, Endpoint)] = &[
    ("/api/v1/health", Endpoint::Health),
    ("/api/v1/metrics/prometheus", Endpoint::Metrics),
    ("/api/v2/metrics/prometheus", Endpoint::Metrics),
];

impl Agent for Logship {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "logship",
        about: "Tails log files and ships them to Elasticsearch or OpenSearch (stdout NDJSON when none is given).",
        default_admin_port: 9471,
        flavor: Flavor::CurrentThread,
        admin_aliases: ALIASES,
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let settings = config.validate()?;
        let stats: StatsSource = Arc::new(Mutex::new(None));
        let metrics = Metrics::register(build.registry, stats.clone());
        let watching = build.readiness.condition("files", "not watching files yet");
        let abandon = CancellationToken::new();
        let sink = match &settings.es {
            None => sink::Sink::Stdout(sink::stdout::StdoutSink::new(metrics.clone())),
            Some(es) => {
                let ready = build
                    .readiness
                    .condition("elasticsearch", "no answer from elasticsearch yet");
                let dlq = Arc::new(dlq::DeadLetters::new(settings.data_dir.as_deref()));
                sink::Sink::Elasticsearch(sink::elasticsearch::EsSink::new(
                    es,
                    metrics.clone(),
                    dlq,
                    ready,
                    abandon.clone(),
                    settings.retry_max_backoff,
                )?)
            }
        };
        // Started here so a bad glob or an unwritable data dir is a configuration error (2).
        let read_stop = CancellationToken::new();
        let (tailer, rx) = Tailer::start(tail_config(&settings), read_stop.clone())?;
        watching.set_ready();
        let tailer = Arc::new(Mutex::new(Some(tailer)));
        let source = tailer.clone();
        if let Ok(mut s) = stats.lock() {
            *s = Some(Box::new(move || {
                source
                    .lock()
                    .ok()
                    .and_then(|t| t.as_ref().map(Tailer::stats))
                    .unwrap_or_default()
            }));
        }
        Ok(Logship {
            settings,
            metrics,
            tailer,
            rx,
            read_stop,
            sink,
            abandon,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let Logship {
            settings,
            metrics,
            tailer,
            rx,
            read_stop,
            sink,
            abandon,
        } = self;
        let acker = match tailer.lock() {
            Ok(t) => t.as_ref().map(Tailer::acker),
            Err(_) => None,
        };
        let Some(acker) = acker else {
            return Err(Error::Config("the tailer is gone".into()));
        };
        match &sink {
            sink::Sink::Stdout(_) => {
                tracing::info!(paths = ?settings.paths, "shipping records to stdout as NDJSON (no Elasticsearch configured)")
            }
            sink::Sink::Elasticsearch(es) => {
                let urls: Vec<String> = settings
                    .es
                    .iter()
                    .flat_map(|e| e.urls.iter().map(|u| common::secret::redact(u.as_str())))
                    .collect();
                tracing::info!(paths = ?settings.paths, ?urls, "shipping records to elasticsearch");
                es.start_ping(ctx.shutdown.child_token());
            }
        }
        // Stop reading as soon as shutdown starts.
        let stop = read_stop.clone();
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            shutdown.triggered().await;
            stop.cancel();
        });
        let actions = settings
            .es
            .as_ref()
            .map(|es| sink::elasticsearch::encoder::ActionEncoder::new(&es.index, es.data_stream));
        let encoder = record::RecordEncoder::new(&settings.fields, settings.parse.as_ref())?;
        let metrics_for_idle = metrics.clone();
        let batcher = pipeline::Batcher::new(
            encoder,
            actions,
            settings.batch_max_bytes,
            settings.batch_max_records,
            pipeline::AckCtx {
                acker,
                metrics,
                unacked: Default::default(),
            },
        )
        .with_multiline(settings.multiline.clone())
        .with_buffer_reuse(settings.es.as_ref().map_or(1, |es| es.max_in_flight) + 2);
        // After a burst, give the memory it used back once reading goes quiet.
        let lines = metrics_for_idle.lines_read.clone();
        let pool = batcher.buffer_pool();
        common::alloc::spawn_idle_release(
            Duration::from_secs(2),
            move || lines.get(),
            move || pool.clear(),
            ctx.shutdown.child_token(),
        );
        // Leave time after the drain for the final checkpoint.
        let drain = ctx
            .shutdown_timeout
            .saturating_sub(Duration::from_millis(500).max(ctx.shutdown_timeout / 10));
        pipeline::run(
            rx,
            batcher,
            sink,
            ctx.shutdown.child_token(),
            pipeline::Pacing {
                linger: settings.batch_linger,
                budget: settings.max_buffer as u64,
                drain,
            },
            abandon,
        )
        .await;
        let tailer = tailer.lock().ok().and_then(|mut t| t.take());
        if let Some(tailer) = tailer {
            tailer.finish().await?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn tail_config(s: &Settings) -> TailConfig {
    let mut t = TailConfig::new(s.paths.clone());
    t.exclude = s.excludes.clone();
    t.start_at = match s.start_at {
        config::StartAt::Head => common::tail::StartAt::Head,
        config::StartAt::End => common::tail::StartAt::End,
    };
    t.data_dir = s.data_dir.clone();
    t.max_line_bytes = s.max_line_bytes;
    t.partial_line_timeout = s.partial_line_timeout;
    t.rescan_interval = s.rescan_interval;
    t.max_batch_bytes = (s.batch_max_bytes / 2).clamp(4096, 256 << 10);
    t.max_in_flight_bytes = s.max_buffer;
    t.checkpoint_interval = s.checkpoint_interval;
    t
}
