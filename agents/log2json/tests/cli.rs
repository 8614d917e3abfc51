//! The real binary: stdin end to end, mixed and malformed input, multiline groups split across
//! reads, CRI partial lines, invalid UTF-8, a 10 MiB line, SIGTERM flushing a pending group,
//! OUTPUT_FORMAT, metrics.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use testkit::{http_get, run_to_end, wait_until, AgentProcess};

const T: Duration = Duration::from_secs(30);

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_log2json"));
    c.env_remove("ELASTICSEARCH_HOST")
        .env_remove("OUTPUT_FORMAT")
        .env("LOG_FORMAT", "json");
    c
}

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/loghub/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs with `input` on stdin to the end; returns (exit code, records, stderr).
fn run_stdin(args: &[&str], input: Vec<u8>) -> (i32, Vec<Value>, String) {
    let mut c = bin();
    c.args(args)
        .args(["--admin-addr", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8(out.stdout).expect("output is UTF-8");
    let records = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running agent fed through a pipe, its stdout lines collected.
struct Live {
    agent: AgentProcess,
    stdin: Option<std::process::ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        let mut c = bin();
        c.args(args)
            .args(["--admin-addr", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut agent = AgentProcess::spawn(c);
        let stdin = agent.child_mut().stdin.take();
        let stdout = agent.child_mut().stdout.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Live { agent, stdin, out }
    }

    fn send(&mut self, text: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(text.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    fn records(&self) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_records(&self, n: usize) -> Vec<Value> {
        wait_until(T, &format!("{n} records"), || {
            self.out.lock().unwrap().len() >= n
        });
        self.records()
    }

    fn metric(&self, name: &str) -> f64 {
        let addr = self.agent.admin_addr();
        let body = http_get(addr, "/metrics").unwrap().body;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

#[test]
fn stdin_end_to_end_with_static_fields() {
    let input = std::fs::read(fixture("Linux_2k.log")).unwrap();
    let mut c = bin();
    c.args([
        "--format",
        "syslog",
        "--field",
        "env=test,team=ops",
        "--admin-addr",
        "none",
    ])
    .env("POD_NAME", "web-0")
    .env("POD_NAMESPACE", "shop")
    .env("OUTPUT_FORMAT", "json")
    .stdin(std::fs::File::open(fixture("Linux_2k.log")).unwrap());
    let (status, stdout, stderr) = run_to_end(c, T);
    assert!(status.success(), "{stderr}");
    let recs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        recs.len(),
        input
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );
    assert_eq!(recs.len(), 2000);
    for r in &recs {
        assert_eq!(r["host"], "combo");
        assert_eq!(
            (
                r["pod"].as_str(),
                r["namespace"].as_str(),
                r["env"].as_str(),
                r["team"].as_str()
            ),
            (Some("web-0"), Some("shop"), Some("test"), Some("ops"))
        );
        assert!(r["@timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(r.get("parse_error").is_none(), "{r}");
    }
    assert_eq!(recs[0]["app"], "sshd(pam_unix)");
    assert_eq!(recs[0]["pid"], 19939);
    assert!(stderr.contains("end of input"), "{stderr}");
}

#[test]
fn output_format_json_only() {
    let mut c = bin();
    c.args(["--admin-addr", "none"])
        .env("OUTPUT_FORMAT", "xml")
        .stdin(Stdio::null());
    let (status, _, stderr) = run_to_end(c, T);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("OUTPUT_FORMAT") || stderr.contains("output-format"),
        "{stderr}"
    );
    assert!(stderr.contains("json"), "{stderr}");
    // Bad options name the option, the value and what is expected.
    let (code, _, stderr) = run_stdin(&["--format", "yaml"], Vec::new());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--format") && stderr.contains("yaml") && stderr.contains("syslog"),
        "{stderr}"
    );
    let (code, _, stderr) = run_stdin(&["--pattern", "(?P<x>"], Vec::new());
    assert_eq!(code, 2);
    assert!(stderr.contains("--pattern"), "{stderr}");
}

#[test]
fn malformed_and_mixed_input_is_never_dropped() {
    let mut live = Live::start(&["--format", "nginx"]);
    live.send(concat!(
        "93.180.71.3 - - [17/May/2015:08:05:32 +0000] \"GET /a HTTP/1.1\" 304 0 \"-\" \"curl/8\"\n",
        "this is not an access log line\n",
        "\n",
        "1.2.3.4 - - [17/May/2015:08:05:33 +0000] \"POST /b HTTP/1.1\" 201 17 \"https://x/\" \"ua\"\n",
        "1.2.3.4 - - [99/Foo/2015:08:05:33 +0000] \"GET / HTTP/1.1\" 200 1\n",
    ));
    let recs = live.wait_records(5);
    assert_eq!(recs[0]["status"], 304);
    assert_eq!(recs[0]["size"], 0);
    assert_eq!(recs[1]["message"], "this is not an access log line");
    assert!(recs[1]["parse_error"]
        .as_str()
        .unwrap()
        .starts_with("combined:"));
    assert_eq!(recs[2]["message"], "");
    assert_eq!(
        (
            recs[3]["method"].as_str(),
            recs[3]["status"].as_u64(),
            recs[3]["size"].as_u64()
        ),
        (Some("POST"), Some(201), Some(17))
    );
    assert!(recs[4]["parse_error"].is_string());
    wait_until(T, "metrics", || {
        live.metric("log2json_lines_read_total") == 5.0
    });
    assert_eq!(
        live.metric("log2json_parse_errors_total{format=\"combined\"}"),
        3.0
    );
    assert_eq!(live.metric("log2json_records_written_total"), 5.0);
    drop(live.stdin.take());
    let status = live.agent.wait_exit(T);
    assert!(status.success());
}

#[test]
fn multiline_group_split_across_reads_and_flushed_on_sigterm() {
    let mut live = Live::start(&[
        "--format",
        "log4j",
        "--multiline-start",
        r"^\d{4}-\d\d-\d\d ",
        "--multiline-timeout",
        "1h",
    ]);
    live.send(
        "2015-10-18 18:01:47,978 ERROR [main] a.B: boom\njava.lang.IllegalStateException: x\n",
    );
    wait_until(T, "first part read", || {
        live.metric("log2json_lines_read_total") == 2.0
    });
    live.send("\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n2015-10-18 18:01:48,000 INFO [main] a.B: next\n");
    let recs = live.wait_records(1);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["level"], "ERROR");
    assert_eq!(
        recs[0]["message"],
        "boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)"
    );
    // The INFO line is a pending group (the timeout is an hour): SIGTERM writes it out.
    wait_until(T, "lines read", || {
        live.metric("log2json_lines_read_total") == 5.0
    });
    assert_eq!(live.records().len(), 1);
    live.agent.signal(libc::SIGTERM);
    let status = live.agent.wait_exit(T);
    assert!(status.success(), "{status:?}");
    let recs = live.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1]["message"], "next");
}

#[test]
fn multiline_timeout_flushes_a_quiet_group() {
    let mut live = Live::start(&["--multiline-indent", "true", "--multiline-timeout", "200ms"]);
    live.send("Traceback (most recent call last):\n  File \"x.py\", line 1\n");
    let recs = live.wait_records(1);
    assert_eq!(
        recs[0]["message"],
        "Traceback (most recent call last):\n  File \"x.py\", line 1"
    );
    assert_eq!(live.metric("log2json_multiline_groups_total"), 1.0);
}

#[test]
fn cri_partial_lines_are_reassembled() {
    let input = concat!(
        "2024-01-01T00:00:00.000000001Z stdout P {\"level\":\"info\",\n",
        "2024-01-01T00:00:00.000000002Z stderr F an error\n",
        "2024-01-01T00:00:00.000000003Z stdout P \"msg\":\"long\"\n",
        "2024-01-01T00:00:00.000000004Z stdout F }\n",
        "not a cri line\n",
    );
    let (code, recs, stderr) = run_stdin(&["--format", "cri"], input.as_bytes().to_vec());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs[0]["stream"], "stderr");
    assert_eq!(recs[1]["message"], "{\"level\":\"info\",\"msg\":\"long\"}");
    assert_eq!(recs[1]["@timestamp"], "2024-01-01T00:00:00.000000001Z");
    assert!(recs[2]["parse_error"].is_string());
}

#[test]
fn invalid_utf8_is_replaced_and_marked() {
    let (code, recs, _) = run_stdin(&["--format", "logfmt"], b"a=1 b=caf\xe9\nc=2\n".to_vec());
    assert_eq!(code, 0);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["b"], "caf\u{fffd}");
    assert_eq!(recs[0]["invalid_utf8"], true);
    assert_eq!(recs[1]["c"], "2");
    assert!(recs[1].get("invalid_utf8").is_none());
}

#[test]
fn ten_mib_line() {
    let mut big = vec![b'x'; 10 << 20];
    big.extend_from_slice(b"\nafter\n");
    // Within --max-line-bytes: one record.
    let (code, recs, stderr) = run_stdin(&["--max-line-bytes", "16MiB"], big.clone());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["message"].as_str().unwrap().len(), 10 << 20);
    assert_eq!(recs[1]["message"], "after");
    // Default limit (1 MiB): ten pieces marked truncated, nothing lost.
    let (code, recs, _) = run_stdin(&[], big);
    assert_eq!(code, 0);
    assert_eq!(recs.len(), 11);
    assert!(recs[..10].iter().all(|r| r["truncated"] == true));
    let total: usize = recs[..10]
        .iter()
        .map(|r| r["message"].as_str().unwrap().len())
        .sum();
    assert_eq!(total, 10 << 20);
    assert_eq!(recs[10]["message"], "after");
    assert!(recs[10].get("truncated").is_none());
}
