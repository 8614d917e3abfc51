//! Criterion micro-benchmarks of the hot paths: line splitting (tail engine), JSON escaping and
//! record writing (`common::parse::Record`), every log2json format parser, and logship's bulk
//! encoding (action line + document per line, and the gzip of a request body).
//!
//! `cargo bench -p micro` runs them all (about a minute: short warm-up and measurement);
//! `cargo bench -p micro -- parse/` runs one group. With `MICRO_MANIFEST=path` set, the lines
//! and bytes each benchmark processes per iteration are written there as JSON, so
//! `benches/micro/run.sh` can report both lines/s and MB/s from criterion's estimates.
use std::{collections::BTreeMap, hint::black_box, time::Duration};

use common::parse::{escape_into, Format, Options, Parser, Record};
use common::tail::Line;
use criterion::{Criterion, Throughput};
use logship::{
    config::ParseSpec, record::RecordEncoder, sink::elasticsearch::encoder::ActionEncoder,
};
use micro::{
    as_block, bytes_of, cri_lines, escape_inputs, json_lines, logfmt_lines, loghub, nginx_lines,
    syslog5424_lines, LineSplitter, ANDROID_PATTERN,
};

/// Lines in the generated inputs (Loghub samples have 300).
const N: usize = 1000;
/// The tail reader's block size.
const BLOCK: usize = 256 * 1024;

/// Lines and bytes per iteration of each benchmark, by id (`group/name`).
type Manifest = BTreeMap<String, (u64, u64)>;

fn split_lines(c: &mut Criterion, m: &mut Manifest) {
    let mut g = c.benchmark_group("split_lines");
    for (name, lines) in [
        ("nginx_170B", nginx_lines(6000)),
        (
            "syslog_110B",
            loghub("linux_syslog")
                .into_iter()
                .cycle()
                .take(6000)
                .collect(),
        ),
    ] {
        let block = as_block(&lines);
        g.throughput(Throughput::Bytes(block.len() as u64));
        m.insert(
            format!("split_lines/{name}"),
            (lines.len() as u64, block.len() as u64),
        );
        let mut out: Vec<Line> = Vec::with_capacity(lines.len());
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut s = LineSplitter::new(16 * 1024);
                for piece in block.chunks(BLOCK) {
                    s.feed(black_box(piece), &mut out);
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn json_escape(c: &mut Criterion, m: &mut Manifest) {
    let mut g = c.benchmark_group("json_escape");
    for (name, texts) in escape_inputs(N) {
        let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
        g.throughput(Throughput::Bytes(bytes));
        // common's escaper (Record, log2json) ...
        m.insert(
            format!("json_escape/common_{name}"),
            (texts.len() as u64, bytes),
        );
        let mut out = String::with_capacity(1024);
        g.bench_function(format!("common_{name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for t in &texts {
                    out.clear();
                    escape_into(&mut out, black_box(t));
                    n += out.len();
                }
                n
            })
        });
        // ... beside serde_json's, which logship's record encoder uses.
        m.insert(
            format!("json_escape/serde_json_{name}"),
            (texts.len() as u64, bytes),
        );
        let mut out = Vec::with_capacity(1024);
        g.bench_function(format!("serde_json_{name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for t in &texts {
                    out.clear();
                    logship::record::write_json_str(&mut out, black_box(t));
                    n += out.len();
                }
                n
            })
        });
    }
    g.finish();
}

fn record_write(c: &mut Criterion, m: &mut Manifest) {
    let mut g = c.benchmark_group("record_write");
    let lines = nginx_lines(N);
    let bytes = bytes_of(&lines);
    g.throughput(Throughput::Elements(lines.len() as u64));
    m.insert(
        "record_write/nine_fields".into(),
        (lines.len() as u64, bytes),
    );
    let mut rec = Record::new();
    g.bench_function("nine_fields", |b| {
        b.iter(|| {
            let mut n = 0;
            for (i, l) in lines.iter().enumerate() {
                rec.begin();
                rec.str("@timestamp", "2026-11-26T15:04:05.123Z");
                rec.str("remote_addr", &l[..12]);
                rec.str("method", "GET");
                rec.str("path", "/api/v1/search?q=shoes&page=2");
                rec.str("protocol", "HTTP/1.1");
                rec.uint("status", 200);
                rec.uint("size", i as u64);
                rec.str(
                    "user_agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                );
                rec.str("message", black_box(l));
                n += rec.finish().len();
            }
            n
        })
    });
    g.finish();
}

fn parse(c: &mut Criterion, m: &mut Manifest) {
    let mut g = c.benchmark_group("parse");
    let cases: Vec<(&str, Format, Vec<String>)> = vec![
        ("combined_nginx", Format::Combined, nginx_lines(N)),
        (
            "syslog3164_loghub_linux",
            Format::Syslog3164,
            loghub("linux_syslog"),
        ),
        ("syslog5424", Format::Syslog5424, syslog5424_lines(N)),
        (
            "apache_error_loghub",
            Format::ApacheError,
            loghub("apache_error"),
        ),
        ("log4j_loghub_hadoop", Format::Log4j, loghub("hadoop_log4j")),
        ("logfmt", Format::Logfmt, logfmt_lines(N)),
        ("json", Format::Json, json_lines(N)),
        ("cri", Format::Cri, cri_lines(N)),
        ("raw", Format::Raw, nginx_lines(N)),
        (
            "regex_loghub_android",
            Format::Regex(ANDROID_PATTERN.to_string()),
            loghub("android_logcat"),
        ),
    ];
    for (name, format, lines) in cases {
        // A fixed "now" keeps the syslog year rule deterministic.
        let options = Options {
            now: Some(1_795_000_000),
            ..Options::default()
        };
        let parser = Parser::new(format, options).expect("benchmark formats are valid");
        let bytes = bytes_of(&lines);
        g.throughput(Throughput::Bytes(bytes));
        m.insert(format!("parse/{name}"), (lines.len() as u64, bytes));
        let mut rec = Record::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for l in &lines {
                    rec.begin();
                    parser.parse(black_box(l), &mut rec);
                    n += rec.finish().len();
                }
                n
            })
        });
    }
    g.finish();
}

fn bulk_encode(c: &mut Criterion, m: &mut Manifest) {
    let mut g = c.benchmark_group("bulk_encode");
    let lines: Vec<Line> = nginx_lines(N)
        .into_iter()
        .scan(0u64, |offset, text| {
            let l = Line {
                offset: *offset,
                invalid_utf8: false,
                truncated: false,
                partial: false,
                text,
            };
            *offset += l.text.len() as u64 + 1;
            Some(l)
        })
        .collect();
    let bytes: u64 = lines.iter().map(|l| l.text.len() as u64 + 1).sum();
    let fields = [("kubernetes.pod.name".to_string(), "web-0".to_string())];
    let nginx = ParseSpec {
        format: Format::Combined,
        options: Options::default(),
    };
    for (name, parse) in [("raw", None), ("parse_nginx", Some(&nginx))] {
        g.throughput(Throughput::Bytes(bytes));
        m.insert(format!("bulk_encode/{name}"), (lines.len() as u64, bytes));
        let mut records = RecordEncoder::new(&fields, parse).expect("valid encoder");
        let mut actions = ActionEncoder::new("logs-%Y.%m.%d", false);
        let mut out = Vec::with_capacity(1 << 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for l in &lines {
                    let ts = "2026-11-26T15:04:05.123Z";
                    actions.encode(&mut out, ts, 0x1234_5678_9abc_def0, l.offset);
                    records.encode(&mut out, ts, "\"/var/log/nginx/access.log\"", black_box(l));
                    out.push(b'\n');
                }
                out.len()
            })
        });
    }
    // The gzip of a request body (of the `parse_nginx` records), as `--es-compression gzip`.
    let mut body = Vec::with_capacity(1 << 20);
    let mut records = RecordEncoder::new(&fields, Some(&nginx)).expect("valid encoder");
    let mut actions = ActionEncoder::new("logs-%Y.%m.%d", false);
    for l in &lines {
        actions.encode(&mut body, "2026-11-26T15:04:05.123Z", 1, l.offset);
        records.encode(&mut body, "2026-11-26T15:04:05.123Z", "\"/p\"", l);
        body.push(b'\n');
    }
    g.throughput(Throughput::Bytes(body.len() as u64));
    m.insert(
        "bulk_encode/gzip_body".into(),
        (lines.len() as u64, body.len() as u64),
    );
    g.bench_function("gzip_body", |b| {
        b.iter(|| {
            logship::sink::elasticsearch::request::gzip(black_box(&body))
                .expect("gzip into memory")
                .len()
        })
    });
    g.finish();
}

fn write_manifest(m: &Manifest) {
    let Some(path) = std::env::var_os("MICRO_MANIFEST") else {
        return;
    };
    let mut text = String::from("{\n");
    for (i, (id, (lines, bytes))) in m.iter().enumerate() {
        let sep = if i + 1 == m.len() { "" } else { "," };
        text.push_str(&format!(
            "  \"{id}\": {{\"lines\": {lines}, \"bytes\": {bytes}}}{sep}\n"
        ));
    }
    text.push_str("}\n");
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!(
            "could not write the benchmark manifest {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    let mut m = Manifest::new();
    split_lines(&mut c, &mut m);
    json_escape(&mut c, &mut m);
    record_write(&mut c, &mut m);
    parse(&mut c, &mut m);
    bulk_encode(&mut c, &mut m);
    write_manifest(&m);
    c.final_summary();
}
