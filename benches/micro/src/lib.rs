//! Inputs and adapters for the criterion micro-benchmarks in `benches/hot_paths.rs`.
//!
//! This crate owns the deterministic benchmark inputs (generated lines from a fixed-seed
//! generator, and Loghub samples under `data/`, see `data/README.md`) and [`LineSplitter`],
//! a thin wrapper over the tail engine's line splitter (`common::tail::bench::Splitter`).
use common::tail::{bench::Splitter, Line};

/// The tail engine's line splitter (`common/src/tail/lines.rs`), fed blocks of bytes.
#[derive(Debug)]
pub struct LineSplitter(Splitter);

impl LineSplitter {
    /// A splitter cutting lines longer than `max_line_bytes`, starting at offset 0.
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter(Splitter::new(max_line_bytes, 0))
    }

    /// Splits `data` into lines appended to `out` (bytes after the last newline are held).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Line>) {
        self.0.feed(data, out);
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the same lines on every
/// machine, without depending on a random crate's algorithm choice.
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Seeded(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One element of `items`.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "/",
    "/api/v1/orders",
    "/api/v1/users/42",
    "/static/app.js",
    "/healthz",
    "/api/v1/search?q=shoes&page=2",
    "/images/logo.png",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "curl/8.5.0",
    "kube-probe/1.30",
    "Go-http-client/1.1",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT"];
const STATUSES: &[&str] = &["200", "200", "200", "201", "204", "301", "404", "500"];
const MESSAGES: &[&str] = &[
    "Accepted publickey for deploy from 10.0.0.7 port 52144 ssh2",
    "pam_unix(cron:session): session opened for user root by (uid=0)",
    "connection reset by peer while reading \"upstream\" response header",
    "request completed in 12ms",
    "cache miss for key user:42:profile\tretrying",
];

/// Time of line `i`: one line every half second from 2026-11-26T00:00:00.
fn hms(i: usize) -> (usize, usize, usize) {
    let t = i / 2;
    ((t / 3600) % 24, (t / 60) % 60, t % 60)
}

/// `n` nginx combined access-log lines (about 170 bytes each).
pub fn nginx_lines(n: usize) -> Vec<String> {
    let mut r = Seeded::new(42);
    (0..n)
        .map(|i| {
            let (h, m, s) = hms(i);
            let referer = if r.below(10) < 3 {
                "-".to_string()
            } else {
                format!("https://shop.example/p/{}", r.below(1000))
            };
            format!(
                "10.{}.{}.{} - - [26/Nov/2026:{h:02}:{m:02}:{s:02} +0000] \"{} {} HTTP/1.1\" {} {} \"{referer}\" \"{}\"",
                r.below(256),
                r.below(256),
                r.below(255) + 1,
                r.pick(METHODS),
                r.pick(PATHS),
                r.pick(STATUSES),
                r.below(99_999),
                r.pick(AGENTS),
            )
        })
        .collect()
}

/// `n` RFC 5424 syslog lines, every other one with structured data.
pub fn syslog5424_lines(n: usize) -> Vec<String> {
    let mut r = Seeded::new(5424);
    (0..n)
        .map(|i| {
            let (h, m, s) = hms(i);
            let sd = if i % 2 == 0 {
                format!(
                    "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"{}\"]",
                    r.below(10_000)
                )
            } else {
                "-".to_string()
            };
            format!(
                "<{}>1 2026-11-26T{h:02}:{m:02}:{s:02}.{:03}Z host{}.example.com app{} {} ID{} {sd} {}",
                r.below(192),
                r.below(1000),
                r.below(9),
                r.below(5),
                r.below(65_000),
                r.below(100),
                r.pick(MESSAGES),
            )
        })
        .collect()
}

/// `n` logfmt lines (`ts=... level=... msg="..." ...`).
pub fn logfmt_lines(n: usize) -> Vec<String> {
    let mut r = Seeded::new(7);
    (0..n)
        .map(|i| {
            let (h, m, s) = hms(i);
            format!(
                "ts=2026-11-26T{h:02}:{m:02}:{s:02}.{:03}Z level={} msg=\"{}\" method={} path={} status={} duration_ms={} user_id={}",
                r.below(1000),
                r.pick(&["info", "info", "warn", "error", "debug"]),
                r.pick(MESSAGES).replace('"', "'").replace('\t', " "),
                r.pick(METHODS),
                r.pick(PATHS),
                r.pick(STATUSES),
                r.below(5000),
                r.below(100_000),
            )
        })
        .collect()
}

/// `n` JSON lines (one object per line, a nested object, escapes in some messages).
pub fn json_lines(n: usize) -> Vec<String> {
    let mut r = Seeded::new(11);
    (0..n)
        .map(|i| {
            let (h, m, s) = hms(i);
            let mut msg = String::new();
            common::parse::escape_into(&mut msg, r.pick(MESSAGES));
            format!(
                "{{\"time\":\"2026-11-26T{h:02}:{m:02}:{s:02}.{:03}Z\",\"level\":\"{}\",\"msg\":\"{msg}\",\"http\":{{\"method\":\"{}\",\"path\":\"{}\",\"status\":{}}},\"duration_ms\":{}.{},\"ok\":true}}",
                r.below(1000),
                r.pick(&["info", "warn", "error"]),
                r.pick(METHODS),
                r.pick(PATHS),
                r.pick(STATUSES),
                r.below(5000),
                r.below(1000),
            )
        })
        .collect()
}

/// `n` CRI container log lines (`<RFC 3339 nanos> stdout F <message>`), one in ten partial.
pub fn cri_lines(n: usize) -> Vec<String> {
    let mut r = Seeded::new(13);
    (0..n)
        .map(|i| {
            let (h, m, s) = hms(i);
            format!(
                "2026-11-26T{h:02}:{m:02}:{s:02}.{:09}Z {} {} {}",
                r.below(1_000_000_000),
                r.pick(&["stdout", "stdout", "stderr"]),
                if i % 10 == 9 { "P" } else { "F" },
                r.pick(MESSAGES),
            )
        })
        .collect()
}

/// Message texts for the JSON escaping benchmarks: plain ASCII (nothing to escape), text
/// with quotes, backslashes and tabs (escapes every ~20 bytes), and non-ASCII UTF-8.
pub fn escape_inputs(n: usize) -> [(&'static str, Vec<String>); 3] {
    let nginx = nginx_lines(n);
    let plain = nginx.iter().map(|l| l.replace('"', "'")).collect();
    let escapes = nginx
        .iter()
        .map(|l| format!("{}\tC:\\logs\\app\\{}", l, l.len()))
        .collect();
    let utf8 = nginx
        .iter()
        .map(|l| format!("Zürich → São Paulo ✓ {}", l.replace('"', "«")))
        .collect();
    [
        ("plain_ascii", plain),
        ("with_escapes", escapes),
        ("utf8", utf8),
    ]
}

/// A Loghub sample (see `data/README.md`), 300 lines of a real system's log.
pub fn loghub(name: &str) -> Vec<String> {
    let text = match name {
        "linux_syslog" => include_str!("../data/linux_syslog.log"),
        "apache_error" => include_str!("../data/apache_error.log"),
        "hadoop_log4j" => include_str!("../data/hadoop_log4j.log"),
        "android_logcat" => include_str!("../data/android_logcat.log"),
        other => panic!(
            "no Loghub sample named {other:?}: choose linux_syslog, apache_error, hadoop_log4j or android_logcat"
        ),
    };
    text.lines().map(str::to_string).collect()
}

/// The lines joined with `'\n'` (and a final one): a block as read from a file.
pub fn as_block(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Total bytes of `lines` with one newline each.
pub fn bytes_of(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}

/// The `--pattern` used for the Android logcat sample (threadtime format).
pub const ANDROID_PATTERN: &str = r"^(?P<time>\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3})\s+(?P<pid>\d+)\s+(?P<tid>\d+) (?P<level>[VDIWEF]) (?P<tag>[^:]*?)\s*: (?P<message>.*)$";

#[cfg(test)]
mod tests {
    use super::*;
    use common::parse::{Format, Options, Outcome, Parser, Record};

    /// Every generated or sampled input parses with its format: the benchmarks measure the
    /// parsing path, not the failure path.
    #[test]
    fn inputs_parse_with_their_formats() {
        let cases: Vec<(Format, Vec<String>)> = vec![
            (Format::Combined, nginx_lines(200)),
            (Format::Syslog5424, syslog5424_lines(200)),
            (Format::Logfmt, logfmt_lines(200)),
            (Format::Json, json_lines(200)),
            (Format::Cri, cri_lines(200)),
            (Format::Syslog3164, loghub("linux_syslog")),
            (Format::ApacheError, loghub("apache_error")),
            (Format::Log4j, loghub("hadoop_log4j")),
            (
                Format::Regex(ANDROID_PATTERN.to_string()),
                loghub("android_logcat"),
            ),
        ];
        for (format, lines) in cases {
            let parser = Parser::new(format.clone(), Options::default()).unwrap();
            let mut rec = Record::new();
            for line in &lines {
                rec.begin();
                let outcome = parser.parse(line, &mut rec);
                assert_eq!(
                    outcome,
                    Outcome::Parsed,
                    "{format} on {line:?}: {}",
                    rec.finish()
                );
            }
        }
    }

    #[test]
    fn generators_are_deterministic() {
        assert_eq!(nginx_lines(50), nginx_lines(50));
        assert_eq!(json_lines(3)[0], json_lines(3)[0]);
        assert_ne!(nginx_lines(2)[0], nginx_lines(2)[1]);
    }

    #[test]
    fn splitter_gives_back_every_line() {
        let lines = nginx_lines(100);
        let block = as_block(&lines);
        let mut s = LineSplitter::new(16 * 1024);
        let mut out = Vec::new();
        for piece in block.chunks(4096) {
            s.feed(piece, &mut out);
        }
        let texts: Vec<&str> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, lines.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
