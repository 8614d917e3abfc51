//! The actions a change goes through, in order: sync, validate, webhooks, signal (with its
//! optional confirmation), command. Each step either completes, fails (the caller retries it
//! with backoff) or, for validation, rejects the change for good.
use std::time::Duration;

use tokio::time::Instant;

use crate::{
    command::Failure,
    config::{ConfirmMode, Settings, SignalTarget, Webhook},
    process,
    snapshot::{ContentHash, File},
    sync::{Applied, Syncer},
};

/// One step of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Sync,
    Validate,
    Webhook(usize),
    Signal,
    Command,
}

impl Step {
    /// The `action` label.
    pub fn name(self) -> &'static str {
        match self {
            Step::Sync => "sync",
            Step::Validate => "validate",
            Step::Webhook(_) => "webhook",
            Step::Signal => "signal",
            Step::Command => "command",
        }
    }
}

/// How a step ended.
#[derive(Debug)]
pub enum Outcome {
    /// Done; on to the next step.
    Done,
    /// Failed; retry this step later.
    Failed(String),
    /// Validation refused the content: stop, do not retry this content.
    Rejected(String),
}

/// What a change carries through its steps (kept across retries).
#[derive(Debug, Default)]
pub struct Progress {
    /// What the sync replaced, to put back if validation fails.
    pub applied: Option<Applied>,
    /// The confirmation URL's answer before the first signal for this change.
    pub baseline: Option<Option<(u16, String)>>,
}

/// The configured actions and what they need (HTTP client, sync state).
#[derive(Debug)]
pub struct Actions {
    settings: Settings,
    http: Option<reqwest::Client>,
    syncer: Option<Syncer>,
}

impl Actions {
    /// Builds the actions for `settings`.
    pub fn new(settings: Settings) -> Result<Self, crate::Error> {
        let http = if settings.needs_http() {
            let https = settings
                .webhooks
                .iter()
                .chain(settings.confirm_url.iter())
                .any(|w| w.url.scheme() == "https");
            Some(
                reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .pool_idle_timeout(Duration::from_secs(30))
                    // Plain-HTTP webhooks (the usual localhost sidecar) need no CA roots in memory.
                    .tls_built_in_root_certs(https)
                    .build()
                    .map_err(crate::Error::HttpClient)?,
            )
        } else {
            None
        };
        let syncer = settings
            .sync_to
            .clone()
            .map(|t| Syncer::new(t, settings.render));
        Ok(Actions {
            settings,
            http,
            syncer,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every step, in order; `reload` false keeps only sync and validation.
    pub fn steps(&self, reload: bool) -> Vec<Step> {
        let s = &self.settings;
        let mut steps = Vec::new();
        if s.sync_to.is_some() {
            steps.push(Step::Sync);
        }
        if s.validate.is_some() && (reload || s.sync_to.is_some()) {
            steps.push(Step::Validate);
        }
        if reload {
            steps.extend((0..s.webhooks.len()).map(Step::Webhook));
            if !s.signal_targets.is_empty() {
                steps.push(Step::Signal);
            }
            if s.command.is_some() {
                steps.push(Step::Command);
            }
        }
        steps
    }

    /// What a step acts on, for logs.
    pub fn target(&self, step: Step) -> String {
        let s = &self.settings;
        match step {
            Step::Sync => s
                .sync_to
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Step::Validate => s
                .validate
                .as_ref()
                .map(|c| c.program().to_string())
                .unwrap_or_default(),
            Step::Webhook(i) => s
                .webhooks
                .get(i)
                .map(|w| w.shown.clone())
                .unwrap_or_default(),
            Step::Signal => s
                .signal_targets
                .iter()
                .map(|t| match t {
                    SignalTarget::Name(n) => format!("process {n}"),
                    SignalTarget::Pidfile(p) => format!("pid file {}", p.display()),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Step::Command => s
                .command
                .as_ref()
                .map(|c| c.program().to_string())
                .unwrap_or_default(),
        }
    }

    /// Runs one step for the content `hash` (`files` when syncing).
    pub async fn run(
        &mut self,
        step: Step,
        hash: &ContentHash,
        files: &[File],
        progress: &mut Progress,
    ) -> Outcome {
        match step {
            Step::Sync => {
                let Some(syncer) = self.syncer.as_mut() else {
                    return Outcome::Done;
                };
                match syncer.apply(files) {
                    Ok(applied) => {
                        progress.applied = Some(applied);
                        Outcome::Done
                    }
                    Err(e) => Outcome::Failed(format!("cannot write the synced files: {e}")),
                }
            }
            Step::Validate => {
                let Some(cmd) = &self.settings.validate else {
                    return Outcome::Done;
                };
                match cmd.run(&hash.0, self.settings.command_timeout).await {
                    Ok(()) => Outcome::Done,
                    Err(Failure {
                        message,
                        exited: true,
                    }) => Outcome::Rejected(message),
                    Err(Failure {
                        message,
                        exited: false,
                    }) => Outcome::Failed(message),
                }
            }
            Step::Webhook(i) => match self.settings.webhooks.get(i) {
                Some(w) => self
                    .webhook(w)
                    .await
                    .map_or_else(Outcome::Failed, |()| Outcome::Done),
                None => Outcome::Done,
            },
            Step::Signal => self
                .signal(progress)
                .await
                .map_or_else(Outcome::Failed, |()| Outcome::Done),
            Step::Command => {
                let Some(cmd) = &self.settings.command else {
                    return Outcome::Done;
                };
                match cmd.run(&hash.0, self.settings.command_timeout).await {
                    Ok(()) => Outcome::Done,
                    Err(f) => Outcome::Failed(f.message),
                }
            }
        }
    }

    /// Puts back what the sync of this change replaced (after a rejected validation); returns
    /// how many files were restored.
    pub fn rollback(&mut self, progress: &mut Progress) -> Result<usize, String> {
        match (self.syncer.as_mut(), progress.applied.take()) {
            (Some(syncer), Some(applied)) => {
                let n = applied.changed();
                syncer
                    .rollback(applied)
                    .map(|()| n)
                    .map_err(|e| format!("cannot restore the synced files: {e}"))
            }
            _ => Ok(0),
        }
    }

    async fn webhook(&self, w: &Webhook) -> Result<(), String> {
        let Some(http) = &self.http else {
            return Ok(());
        };
        let s = &self.settings;
        let resp = http
            .request(s.webhook_method.clone(), w.url.clone())
            .headers(s.webhook_headers.clone())
            .timeout(s.webhook_timeout)
            .send()
            .await
            .map_err(|e| format!("cannot call {}: {}", w.shown, describe(e)))?;
        let status = resp.status().as_u16();
        let ok = match s.webhook_status {
            Some(want) => status == want,
            None => resp.status().is_success(),
        };
        if ok {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        let want = s
            .webhook_status
            .map_or_else(|| "a 2xx status".to_string(), |c| format!("status {c}"));
        Err(format!(
            "{} answered {status}, expected {want}: {}",
            w.shown,
            body.trim()
        ))
    }

    async fn signal(&self, progress: &mut Progress) -> Result<(), String> {
        let s = &self.settings;
        let confirm = match (&s.confirm_url, &self.http) {
            (Some(u), Some(http)) => Some((u, http)),
            _ => None,
        };
        if let Some((u, http)) = confirm {
            if progress.baseline.is_none() && s.confirm == ConfirmMode::Change {
                progress.baseline = Some(probe(http, u).await.ok());
            }
        }
        let mut pids = Vec::new();
        for t in &s.signal_targets {
            match t {
                SignalTarget::Name(n) => {
                    let found = process::find_by_name(n);
                    if found.is_empty() {
                        return Err(format!(
                            "no process named {n} (is shareProcessNamespace: true set on the pod?)"
                        ));
                    }
                    pids.extend(found);
                }
                SignalTarget::Pidfile(p) => pids.push(process::read_pidfile(p)?),
            }
        }
        for pid in pids {
            process::send(pid, s.signal).map_err(|e| {
                format!(
                    "cannot send signal {} to process {pid}: {e} (same user or CAP_KILL needed)",
                    s.signal
                )
            })?;
        }
        let Some((u, http)) = confirm else {
            return Ok(());
        };
        let baseline = progress.baseline.clone().flatten();
        let deadline = Instant::now() + s.confirm_timeout;
        let mut last;
        loop {
            match probe(http, u).await {
                Ok((status, body)) => {
                    let confirmed = match (s.confirm, &baseline) {
                        (ConfirmMode::Success, _) => (200..300).contains(&status),
                        (ConfirmMode::Change, Some(b)) => (status, &body) != (b.0, &b.1),
                        (ConfirmMode::Change, None) => (200..300).contains(&status),
                    };
                    if confirmed {
                        progress.baseline = None;
                        return Ok(());
                    }
                    last = format!("answered {status}");
                }
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "reload not confirmed: {} {last} (unchanged) for {}",
                    u.shown,
                    humantime::format_duration(s.confirm_timeout)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn probe(http: &reqwest::Client, u: &Webhook) -> Result<(u16, String), String> {
    let resp = http
        .get(u.url.clone())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("cannot reach it: {}", describe(e)))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("cannot read its answer: {}", describe(e)))?;
    Ok((status, body))
}

/// A reqwest error without its URL (which may hold a password), with its causes.
fn describe(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
