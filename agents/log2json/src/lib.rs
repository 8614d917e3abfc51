//! Turns text logs (syslog, nginx/apache, log4j, logfmt, CRI, regex) into JSON lines.
//!
//! Input: stdin (the default, or `--path -`) or files through the shared tailing engine
//! (`common::tail`: globs, rotation, checkpoints under `--data-dir`, acknowledged only after
//! the output took the records). Parsing: `common::parse` (shared with logship). Output:
//! stdout, a size-rotated file, or HTTP NDJSON POSTs (Elasticsearch `_bulk` when
//! `ELASTICSEARCH_HOST` is set). SIGTERM writes pending multiline groups and the output, then
//! exits 0.
//!
//! Modules: [`config`] (options), [`input`] (stdin reader, tail chunks), [`pipeline`] (CRI
//! reassembly, multiline, parse, static fields), [`output`] (sinks), [`metrics`] and
//! [`events`].
pub mod config;
pub mod events;
pub mod input;
pub mod metrics;
pub mod output;
pub mod pipeline;

use std::{process::ExitCode, time::Duration};

use common::{
    admin::Endpoint,
    parse::Parser,
    runtime::Build,
    tail::{Acker, StartAt, TailConfig, Tailer},
    Agent, AgentInfo, Context, Flavor,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::Config;
use config::{OutputTarget, Settings};
use input::Batch;
use metrics::Metrics;
use output::Sink;
use pipeline::{Pipeline, PipelineConfig, STDIN};

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option has a bad value.
    #[error("invalid value {value:?} for {option}: expected {expected}")]
    Config {
        /// The option.
        option: String,
        /// The value.
        value: String,
        /// What is expected.
        expected: String,
    },
    /// The pattern or time format does not build.
    #[error("{0}")]
    Parser(String),
    /// The files cannot be tailed.
    #[error("cannot read the input files: {0}")]
    Tail(#[from] common::tail::TailError),
    /// stdin cannot be read.
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    /// The output failed.
    #[error("{0}")]
    Output(String),
}

/// The agent.
#[derive(Debug)]
pub struct Log2Json {
    settings: Settings,
    metrics: Metrics,
    sink: Sink,
    input_ready: common::readiness::Condition,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

/// Output buffered beyond this is written even while more input is waiting.
const FLUSH_BYTES: usize = 128 * 1024;

impl Agent for Log2Json {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "log2json",
        about: "Turns text logs (syslog, nginx/apache, log4j, logfmt, CRI, regex) into JSON lines.",
        default_admin_port: 9472,
        flavor: Flavor::CurrentThread,
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let settings = config.settings()?;
        let metrics = Metrics::register(build.registry);
        let sink = Sink::open(&settings)?;
        let input_ready = build.readiness.condition("input", "input not opened yet");
        Ok(Log2Json {
            settings,
            metrics,
            sink,
            input_ready,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let Log2Json {
            settings: s,
            metrics,
            mut sink,
            input_ready,
        } = self;
        if let OutputTarget::Http { url, bulk: true } = &s.output {
            info!(url = %common::secret::redact(url), "ELASTICSEARCH_HOST is set: records go to its _bulk API");
        }
        let parser = Parser::new(s.format.clone(), s.options.clone())
            .map_err(|e| Error::Parser(e.to_string()))?;
        let mut pipeline = Pipeline::new(
            PipelineConfig {
                parser,
                multiline: s.multiline.clone(),
                static_fields: s.static_fields.clone(),
                bulk: matches!(s.output, OutputTarget::Http { bulk: true, .. }),
                max_line_bytes: s.max_line_bytes,
                partial_timeout: s
                    .multiline
                    .as_ref()
                    .map_or(Duration::from_secs(2), |m| m.timeout),
            },
            metrics.clone(),
        );
        let (tx, mut rx) = mpsc::channel::<Batch>(8);
        let mut tailer: Option<(Tailer, Acker)> = None;
        if s.paths.is_empty() {
            input::spawn_stdin(tx, s.max_line_bytes).map_err(Error::Stdin)?;
            info!(format = %s.format, output = sink.name(), "reading stdin");
        } else {
            let mut tc = TailConfig::new(s.paths.clone());
            tc.exclude = s.exclude.clone();
            tc.start_at = if s.start_at_end {
                StartAt::End
            } else {
                StartAt::Head
            };
            tc.data_dir = s.data_dir.clone();
            tc.max_line_bytes = s.max_line_bytes;
            let (t, mut chunks) = Tailer::start(tc, ctx.shutdown.child_token())?;
            let acker = t.acker();
            tailer = Some((t, acker));
            ctx.shutdown.spawn(async move {
                while let Some(c) = chunks.recv().await {
                    if tx.send(Batch::Chunk(c)).await.is_err() {
                        break;
                    }
                }
            });
            info!(paths = ?s.paths, format = %s.format, output = sink.name(), "tailing files");
        }
        input_ready.set_ready();
        // After a burst, give the memory it used back once input goes quiet.
        let lines = metrics.lines_read.clone();
        common::alloc::spawn_idle_release(
            Duration::from_secs(2),
            move || lines.get(),
            || {},
            ctx.shutdown.child_token(),
        );

        let stop = ctx.shutdown.token().clone();
        let http_batch = match &sink {
            Sink::Http(_) => Some((s.http_batch_bytes, s.http_flush_interval)),
            _ => None,
        };
        let mut oldest: Option<tokio::time::Instant> = None;
        let acker = tailer.as_ref().map(|(_, a)| a.clone());
        let mut eof = false;
        loop {
            let ml_deadline = pipeline.next_deadline().map(tokio::time::Instant::from_std);
            let http_deadline = match (http_batch, oldest) {
                (Some((_, every)), Some(o)) => Some(o + every),
                _ => None,
            };
            let deadline = [ml_deadline, http_deadline].into_iter().flatten().min();
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                b = rx.recv() => match b {
                    Some(b) => process(&mut pipeline, b),
                    None => { eof = true; break; }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    pipeline.flush_pending(std::time::Instant::now(), false);
                }
            }
            // Take what is already waiting before writing, up to a bound.
            while pipeline.output().len() < FLUSH_BYTES {
                match rx.try_recv() {
                    Ok(b) => process(&mut pipeline, b),
                    Err(_) => break,
                }
            }
            if pipeline.output().is_empty() {
                continue;
            }
            let due = match http_batch {
                None => true,
                Some((bytes, every)) => {
                    let o = *oldest.get_or_insert_with(tokio::time::Instant::now);
                    pipeline.output().len() >= bytes || o + every <= tokio::time::Instant::now()
                }
            };
            if due {
                match write_out(&mut pipeline, &mut sink, &metrics, &stop, acker.as_ref()).await {
                    Ok(()) => oldest = None,
                    // Interrupted by shutdown while retrying: the drain below tries again.
                    Err(_) if stop.is_cancelled() => break,
                    Err(e) => return Err(e),
                }
            }
        }

        // Drain: what was read already, pending groups, the output; then the final checkpoint.
        if !eof {
            info!("shutting down: writing pending records");
        }
        while let Ok(b) = rx.try_recv() {
            process(&mut pipeline, b);
        }
        pipeline.flush_pending(std::time::Instant::now(), true);
        let drain = CancellationToken::new();
        let limit = ctx
            .shutdown_timeout
            .saturating_sub(Duration::from_millis(500));
        let timer = {
            let d = drain.clone();
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                d.cancel();
            })
        };
        let written = write_out(&mut pipeline, &mut sink, &metrics, &drain, acker.as_ref()).await;
        timer.abort();
        if let Some((t, _)) = tailer {
            if let Err(error) = t.finish().await {
                warn!(%error, "cannot write the final checkpoint");
            }
        }
        written?;
        if eof {
            info!("end of input");
        }
        Ok(ExitCode::SUCCESS)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn process(p: &mut Pipeline, b: Batch) {
    match b {
        Batch::Text { text, flags } => p.push_text(STDIN, &text, flags),
        Batch::Chunk(c) => p.push_chunk(c),
    }
}

async fn write_out(
    p: &mut Pipeline,
    sink: &mut Sink,
    m: &Metrics,
    stop: &CancellationToken,
    acker: Option<&Acker>,
) -> Result<(), Error> {
    if !p.output().is_empty() {
        sink.write(p.output(), m, stop).await?;
        events::RecordsWritten {
            count: p.pending_records(),
            bytes: p.output().len() as u64,
        }
        .emit(m);
    }
    let acks = p.clear_output();
    if let Some(a) = acker {
        for t in acks {
            a.ack(t);
        }
    }
    Ok(())
}
