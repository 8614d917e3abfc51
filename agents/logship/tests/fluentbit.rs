//! Migration: a fluent-bit classic config from the guide's log-shipper sidecar, mapped and run.
mod support;

use std::time::Duration;

use support::*;
use testkit::{fake_es::FakeEs, wait_until};

#[test]
fn the_guides_fluent_bit_config_is_mapped_and_run() {
    let es = FakeEs::start();
    es.require_basic_auth("elastic", "changeme");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("var-log-app");
    std::fs::create_dir(&logs).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    append(&logs.join("app.log"), (0..100).map(nginx_line));
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!(
            r#"# The fluent-bit-config ConfigMap of the guide's web application pod.
[SERVICE]
    Flush         1
    Log_Level     info
    Daemon        off
    HTTP_Server   On
    HTTP_Listen   0.0.0.0
    HTTP_Port     2020

[INPUT]
    Name              tail
    Tag               app.*
    Path              {logs}/*.log
    DB                {state}/flb_app.db
    Mem_Buf_Limit     50MB
    Skip_Long_Lines   On
    Refresh_Interval  10
    Read_from_Head    true

[OUTPUT]
    Name            es
    Match           *
    Host            ${{ELASTICSEARCH_HOST}}
    Port            ${{ELASTICSEARCH_PORT}}
    HTTP_User       elastic
    HTTP_Passwd     ${{ES_PASSWORD}}
    Logstash_Format On
    Logstash_Prefix app
    Suppress_Type_Name On
    Buffer_Size     False
    Retry_Limit     False
"#,
            logs = logs.display(),
            state = state.display()
        ),
    )
    .unwrap();
    let mut cmd = logship(&["--fluent-bit-config", &conf.display().to_string()]);
    cmd.env("ELASTICSEARCH_HOST", "127.0.0.1")
        .env("ELASTICSEARCH_PORT", es.addr().port().to_string())
        .env("ES_PASSWORD", "changeme");
    let run = spawn(cmd);
    run.proc.wait_ready(LONG);
    wait_until(LONG, "100 documents", || es.doc_count() == 100);
    assert!(
        es.docs().iter().all(|d| d.index.starts_with("app-20")),
        "{}",
        es.docs()[0].index
    );
    // DB's directory holds logship's checkpoints.
    wait_until(LONG, "checkpoints beside the DB", || {
        state.join("checkpoints.json").exists()
    });
    assert!(!run.proc.stderr().contains("changeme"));
}

#[test]
fn an_unsupported_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(&conf, "[INPUT]\n    Name tail\n    Path /var/log/app/*.log\n    Multiline On\n[OUTPUT]\n    Name es\n    Host es\n").unwrap();
    let (status, _, err) = testkit::run_to_end(
        logship(&["--fluent-bit-config", &conf.display().to_string()]),
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("Multiline") && err.contains(":4:"), "{err}");
    std::fs::write(
        &conf,
        "[INPUT]\n    Name tail\n    Path ${LOGSHIP_TEST_NOT_SET_ANYWHERE}\n",
    )
    .unwrap();
    let (status, _, err) = testkit::run_to_end(
        logship(&["--fluent-bit-config", &conf.display().to_string()]),
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("LOGSHIP_TEST_NOT_SET_ANYWHERE"), "{err}");
}
