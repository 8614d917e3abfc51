//! Unit tests of the formats: one or two typical lines each, the edge cases, and failures.
use serde_json::{json, Value};

use super::*;

/// 2026-11-26T00:00:00Z.
const NOW: i64 = 1_795_651_200;

fn parser(format: Format) -> Parser {
    Parser::new(
        format,
        Options {
            now: Some(NOW),
            ..Options::default()
        },
    )
    .unwrap()
}

fn run(p: &Parser, line: &str) -> (Outcome, Value) {
    let mut r = Record::new();
    r.begin();
    let o = p.parse(line, &mut r);
    let text = r.finish().to_string();
    (
        o,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON {text}: {e}")),
    )
}

fn ok(format: Format, line: &str) -> Value {
    let (o, v) = run(&parser(format), line);
    assert_eq!(o, Outcome::Parsed, "{line} -> {v}");
    v
}

#[test]
fn syslog_3164() {
    let v = ok(
        Format::Syslog3164,
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=218.188.2.4 ",
    );
    assert_eq!(
        v,
        json!({"@timestamp":"2026-06-14T15:16:01Z","host":"combo","app":"sshd(pam_unix)","pid":19939,
               "message":"authentication failure; rhost=218.188.2.4"})
    );
    let v = ok(
        Format::Syslog3164,
        "<38>Dec 31 08:00:00 web01 syslogd 1.4.1: restart.",
    );
    assert_eq!(
        v["@timestamp"], "2025-12-31T08:00:00Z",
        "more than a month ahead of now: last year"
    );
    assert_eq!(
        (
            v["facility"].as_str(),
            v["severity"].as_str(),
            v["priority"].as_u64()
        ),
        (Some("auth"), Some("info"), Some(38))
    );
    assert_eq!(
        (v["app"].as_str(), v["message"].as_str()),
        (Some("syslogd 1.4.1"), Some("restart."))
    );
    let v = ok(
        Format::Syslog3164,
        "2024-03-01T10:00:00.123456+01:00 host app: hi",
    );
    assert_eq!(v["@timestamp"], "2024-03-01T09:00:00.123456Z");
    // No host (what /dev/log sees).
    let v = ok(Format::Syslog3164, "Jan  2 03:04:05 cron[42]: job done");
    assert_eq!(
        (v["app"].as_str(), v["pid"].as_u64(), v.get("host")),
        (Some("cron"), Some(42), None)
    );
    // No tag.
    let v = ok(
        Format::Syslog3164,
        "Jan  2 03:04:05 host just text, no: tag here at all",
    );
    assert_eq!(v["message"], "just text, no: tag here at all");
    let (o, v) = run(&parser(Format::Syslog3164), "garbage line");
    assert!(matches!(o, Outcome::Failed(_)));
    assert_eq!(v["message"], "garbage line");
    assert!(v["parse_error"].as_str().unwrap().starts_with("syslog:"));
}

#[test]
fn syslog_zone() {
    let p = Parser::new(
        Format::Syslog3164,
        Options {
            zone: "America/New_York".parse().unwrap(),
            now: Some(NOW),
            ..Options::default()
        },
    )
    .unwrap();
    let (_, v) = run(&p, "Jul  4 12:00:00 h a: m");
    assert_eq!(v["@timestamp"], "2026-07-04T16:00:00Z");
}

#[test]
fn syslog_5424() {
    let v = ok(
        Format::Syslog5424,
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ication"][x@1 a="]"] An application event"#,
    );
    assert_eq!(
        v,
        json!({"@timestamp":"2003-10-11T22:14:15.003Z","priority":165,"facility":"local4","severity":"notice","version":1,
               "host":"mymachine.example.com","app":"evntslog","msgid":"ID47",
               "structured_data":{"exampleSDID@32473":{"iut":"3","eventSource":"Appl\"ication"},"x@1":{"a":"]"}},
               "message":"An application event"})
    );
    let v = ok(Format::Syslog5424, "<34>1 - - - - - -");
    assert_eq!(
        v,
        json!({"priority":34,"facility":"auth","severity":"crit","version":1})
    );
    let (o, _) = run(
        &parser(Format::Syslog5424),
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
    );
    assert!(matches!(o, Outcome::Failed(_)));
}

#[test]
fn combined_access_log() {
    let v = ok(
        Format::Combined,
        r#"93.180.71.3 - - [17/May/2015:08:05:32 +0000] "GET /downloads/product_1 HTTP/1.1" 304 0 "-" "Debian APT-HTTP/1.3 (0.8.16~exp12ubuntu10.21)""#,
    );
    assert_eq!(
        v,
        json!({"@timestamp":"2015-05-17T08:05:32Z","remote_addr":"93.180.71.3","method":"GET","path":"/downloads/product_1",
               "protocol":"HTTP/1.1","status":304,"size":0,"user_agent":"Debian APT-HTTP/1.3 (0.8.16~exp12ubuntu10.21)"})
    );
    // Common log format, a user, `-` size, an escaped quote, a bad request line.
    let v = ok(
        Format::Combined,
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 -"#,
    );
    assert_eq!(
        (
            v["remote_user"].as_str(),
            v["size"].as_u64(),
            v["@timestamp"].as_str()
        ),
        (Some("frank"), Some(0), Some("2000-10-10T20:55:36Z"))
    );
    let v = ok(
        Format::Combined,
        r#"::1 - - [10/Oct/2000:13:55:36 +0000] "\x16\x03\x01" 400 157 "-" "a \"quoted\" agent" 0.001"#,
    );
    assert_eq!(
        (
            v["request"].as_str(),
            v["user_agent"].as_str(),
            v["extra"].as_str()
        ),
        (
            Some(r"\x16\x03\x01"),
            Some(r#"a \"quoted\" agent"#),
            Some("0.001")
        )
    );
    let (o, v) = run(
        &parser(Format::Combined),
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" abc 1"#,
    );
    assert!(matches!(o, Outcome::Failed(_)), "{v}");
}

#[test]
fn apache_error_log() {
    let v = ok(Format::ApacheError, "[Sun Dec 04 04:47:44 2005] [error] [client 222.166.160.184] Directory index forbidden by rule: /var/www/html/");
    assert_eq!(
        v,
        json!({"@timestamp":"2005-12-04T04:47:44Z","level":"error","client":"222.166.160.184","message":"Directory index forbidden by rule: /var/www/html/"})
    );
    let v = ok(Format::ApacheError, "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:1234] AH00124: Request exceeded the limit");
    assert_eq!(
        v,
        json!({"@timestamp":"2000-10-11T14:32:52.123456Z","module":"core","level":"error","pid":35708,"tid":4328636416u64,
               "client":"72.15.99.187:1234","message":"AH00124: Request exceeded the limit"})
    );
}

#[test]
fn log4j_and_logback() {
    let v = ok(Format::Log4j, "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster");
    assert_eq!(
        v,
        json!({"@timestamp":"2015-10-18T18:01:47.978Z","level":"INFO","thread":"main","logger":"org.apache.hadoop.mapreduce.v2.app.MRAppMaster","message":"Created MRAppMaster"})
    );
    let v = ok(
        Format::Log4j,
        "2015-10-18 18:01:47.978 [http-nio-8080-exec-1] WARN  com.example.Foo - something odd",
    );
    assert_eq!(
        (
            v["thread"].as_str(),
            v["level"].as_str(),
            v["logger"].as_str(),
            v["message"].as_str()
        ),
        (
            Some("http-nio-8080-exec-1"),
            Some("WARN"),
            Some("com.example.Foo"),
            Some("something odd")
        )
    );
    let v = ok(Format::Log4j, "2015-10-18T18:01:47Z ERROR boom");
    assert_eq!(
        (v["level"].as_str(), v["message"].as_str()),
        (Some("ERROR"), Some("boom"))
    );
    assert!(matches!(
        run(&parser(Format::Log4j), "2015-10-18 18:01:47,978 hello").0,
        Outcome::Failed(_)
    ));
}

#[test]
fn logfmt_lines() {
    let v = ok(
        Format::Logfmt,
        r#"ts=2024-01-01T00:00:00Z level=info msg="hello \"world\"" ok dur=1.5ms"#,
    );
    assert_eq!(
        v,
        json!({"@timestamp":"2024-01-01T00:00:00Z","ts":"2024-01-01T00:00:00Z","level":"info","msg":"hello \"world\"","ok":true,"dur":"1.5ms"})
    );
    assert!(matches!(
        run(&parser(Format::Logfmt), r#"msg="unterminated"#).0,
        Outcome::Failed(_)
    ));
    assert!(matches!(
        run(&parser(Format::Logfmt), "   ").0,
        Outcome::Failed(_)
    ));
}

#[test]
fn json_passthrough() {
    let v = ok(Format::Json, r#" {"a":1,"b":{"c":[1,2]}} "#);
    assert_eq!(v, json!({"a":1,"b":{"c":[1,2]}}));
    let mut r = Record::new();
    r.begin();
    r.str("pod", "p1");
    assert_eq!(parser(Format::Json).parse("{}", &mut r), Outcome::Parsed);
    r.str("ns", "n");
    assert_eq!(r.finish(), r#"{"pod":"p1","ns":"n"}"#);
    for bad in ["[1,2]", r#"{"a":}"#, r#"{"a":1} {"b":2}"#, "not json"] {
        let (o, v) = run(&parser(Format::Json), bad);
        assert!(matches!(o, Outcome::Failed(_)), "{bad}");
        assert_eq!(v["message"], bad);
    }
}

#[test]
fn cri_lines_and_partials() {
    let v = ok(
        Format::Cri,
        "2024-01-01T00:00:00.000000000Z stdout F hello world",
    );
    assert_eq!(
        v,
        json!({"@timestamp":"2024-01-01T00:00:00.000000000Z","stream":"stdout","message":"hello world"})
    );
    let mut j = CriJoiner::new(1 << 20);
    let mut out = Vec::new();
    j.push("2024-01-01T00:00:00.1Z stdout P hel", &mut out);
    j.push("2024-01-01T00:00:00.2Z stderr F err line", &mut out);
    j.push("2024-01-01T00:00:00.3Z stdout P lo ", &mut out);
    assert!(j.has_pending());
    j.push("2024-01-01T00:00:00.4Z stdout F world", &mut out);
    assert_eq!(
        out,
        [
            "2024-01-01T00:00:00.2Z stderr F err line",
            "2024-01-01T00:00:00.1Z stdout F hello world"
        ]
    );
    assert!(!j.has_pending());
    // Limits and flush keep the partial mark.
    let mut j = CriJoiner::new(8);
    out.clear();
    j.push("2024-01-01T00:00:00Z stdout P 0123456789", &mut out);
    j.push("2024-01-01T00:00:01Z stdout P tail", &mut out);
    j.flush(&mut out);
    let p = parser(Format::Cri);
    let vs: Vec<Value> = out.iter().map(|l| run(&p, l).1).collect();
    assert_eq!(vs[0]["message"], "0123456789");
    assert_eq!(vs[0]["partial"], true);
    assert_eq!(vs[1]["message"], "tail");
}

#[test]
fn regex_patterns() {
    let mut types = std::collections::HashMap::new();
    types.insert("pid".to_string(), FieldType::Int);
    let p = Parser::new(
        Format::Regex(r"^(?P<timestamp>\d\d-\d\d \S+)\s+(?P<pid>\d+)\s+(?P<level>\w) (?P<tag>[^:]*): (?P<msg>.*)$".into()),
        Options { time_format: Some("%m-%d %H:%M:%S%.3f".into()), types, now: Some(NOW), ..Options::default() },
    )
    .unwrap();
    let (o, v) = run(&p, "03-17 16:13:38.811  1702 D WindowManager: hi");
    assert_eq!(o, Outcome::Parsed);
    assert_eq!(
        v,
        json!({"@timestamp":"2026-03-17T16:13:38.811Z","pid":1702,"level":"D","tag":"WindowManager","msg":"hi"})
    );
    assert!(matches!(run(&p, "nope").0, Outcome::Failed(_)));
    assert!(
        Parser::new(Format::Regex("(unclosed".into()), Options::default())
            .unwrap_err()
            .to_string()
            .contains("--pattern")
    );
    assert!(Parser::new(Format::Regex("no names".into()), Options::default()).is_err());
}

#[test]
fn multiline_groups() {
    let cfg = |mode| MultilineConfig {
        mode,
        max_lines: 4,
        max_bytes: 1 << 20,
        timeout: std::time::Duration::from_secs(1),
    };
    let mut m = Multiline::new(cfg(MultilineMode::Start(
        regex::Regex::new(r"^\d{4}-").unwrap(),
    )));
    let lines = [
        "2024-01-01 ERROR boom",
        "java.lang.RuntimeException: x",
        "\tat a.b(C.java:1)",
        "2024-01-01 INFO next",
    ];
    let out: Vec<String> = lines.iter().filter_map(|l| m.push(l)).collect();
    assert_eq!(
        out,
        ["2024-01-01 ERROR boom\njava.lang.RuntimeException: x\n\tat a.b(C.java:1)"]
    );
    assert!(m.deadline().is_some());
    assert_eq!(m.flush().as_deref(), Some("2024-01-01 INFO next"));
    assert!(m.flush().is_none());
    // Indentation, and the line limit.
    let mut m = Multiline::new(cfg(MultilineMode::Indent));
    let out: Vec<String> = ["a", " 1", " 2", " 3", " 4", "b"]
        .iter()
        .filter_map(|l| m.push(l))
        .collect();
    assert_eq!(out, ["a\n 1\n 2\n 3", " 4"]);
    assert_eq!(m.flush().as_deref(), Some("b"));
}

#[test]
fn field_names_and_formats() {
    for (name, f) in [
        ("nginx", Format::Combined),
        ("rfc3164", Format::Syslog3164),
        ("apache-error", Format::ApacheError),
        ("CRI", Format::Cri),
    ] {
        assert_eq!(name.parse::<Format>().unwrap(), f);
    }
    assert!("yaml".parse::<Format>().unwrap_err().contains("--pattern"));
}

#[test]
fn multiline_options_are_checked_and_name_the_option() {
    let t = std::time::Duration::from_secs(2);
    assert!(MultilineConfig::from_options(None, false, 0, 0, t)
        .unwrap()
        .is_none());
    assert!(matches!(
        MultilineConfig::from_options(None, true, 10, 100, t)
            .unwrap()
            .unwrap()
            .mode,
        MultilineMode::Indent
    ));
    let e = MultilineConfig::from_options(Some("[a-"), false, 10, 100, t).unwrap_err();
    assert_eq!(e.option, "--multiline-start");
    assert!(e.to_string().contains("[a-"), "{e}");
    let e = MultilineConfig::from_options(Some("^x"), true, 10, 100, t).unwrap_err();
    assert_eq!(e.option, "--multiline-indent");
    let e = MultilineConfig::from_options(Some("^x"), false, 0, 100, t).unwrap_err();
    assert_eq!(e.option, "--multiline-max-lines");
}
