//! Migration from fluent-bit: `--fluent-bit-config FILE` reads a fluent-bit classic config
//! (`[SERVICE]`, one `[INPUT]` with `Name tail`, one `[OUTPUT]` with `Name es`) and fills the
//! options flags and env left unset.
//!
//! Keys are case-insensitive, `${VAR}` is replaced from the environment (and `@SET VAR=value`),
//! `@INCLUDE file` is read relative to the config. A key logship does not support is an error
//! naming it (exit 2), never a silent skip; keys that only tune fluent-bit's own internals
//! (buffer chunk sizes, `Buffer_Size`, `Generate_ID`, which logship always does) are accepted.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{
    config::{parse_bool, parse_byte_size},
    Secret,
};

use crate::{config::Config, Error};

#[derive(Debug, Default)]
struct Section {
    name: String,
    /// (key as written, value, line number)
    entries: Vec<(String, String, usize)>,
}

/// Reads `file` and fills `config`'s unset options from it.
pub fn apply(file: &Path, config: &mut Config) -> Result<(), Error> {
    let mut vars = HashMap::new();
    let mut sections = Vec::new();
    read(file, &mut vars, &mut sections, 0)?;
    let err = |line: usize, msg: String| Error::Config(format!("{}:{line}: {msg}", file.display()));
    let inputs: Vec<&Section> = sections.iter().filter(|s| s.name == "input").collect();
    let outputs: Vec<&Section> = sections.iter().filter(|s| s.name == "output").collect();
    if inputs.len() != 1 {
        return Err(err(
            0,
            format!(
                "expected exactly one [INPUT] section (tail), found {}",
                inputs.len()
            ),
        ));
    }
    if outputs.len() > 1 {
        return Err(err(
            0,
            format!(
                "expected at most one [OUTPUT] section (es), found {}",
                outputs.len()
            ),
        ));
    }
    for s in &sections {
        match s.name.as_str() {
            "service" => service(s, config).map_err(|(l, m)| err(l, m))?,
            "input" => input(s, config).map_err(|(l, m)| err(l, m))?,
            "output" => output(s, config).map_err(|(l, m)| err(l, m))?,
            other => {
                return Err(err(0, format!("section [{}] is not supported by logship (only SERVICE, one tail INPUT and one es OUTPUT)", other.to_uppercase())))
            }
        }
    }
    Ok(())
}

fn read(
    file: &Path,
    vars: &mut HashMap<String, String>,
    sections: &mut Vec<Section>,
    depth: u32,
) -> Result<(), Error> {
    if depth > 8 {
        return Err(Error::Config(format!(
            "{}: @INCLUDE nested too deeply",
            file.display()
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::Config(format!(
            "cannot read --fluent-bit-config {}: {e}",
            file.display()
        ))
    })?;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = n + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = expand(line, vars).map_err(|v| {
            Error::Config(format!(
                "{}:{n}: environment variable {v} is not set (referenced as ${{{v}}})",
                file.display()
            ))
        })?;
        if let Some(rest) = line
            .strip_prefix("@SET ")
            .or_else(|| line.strip_prefix("@set "))
        {
            if let Some((k, v)) = rest.split_once('=') {
                vars.insert(k.trim().to_string(), v.trim().to_string());
            }
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("@INCLUDE ")
            .or_else(|| line.strip_prefix("@include "))
        {
            let inc = PathBuf::from(rest.trim());
            let inc = if inc.is_absolute() {
                inc
            } else {
                file.parent().unwrap_or(Path::new(".")).join(inc)
            };
            read(&inc, vars, sections, depth + 1)?;
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            sections.push(Section {
                name: line[1..line.len() - 1].trim().to_ascii_lowercase(),
                entries: Vec::new(),
            });
            continue;
        }
        let (k, v) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let Some(section) = sections.last_mut() else {
            return Err(Error::Config(format!(
                "{}:{n}: key {k} outside a [SECTION]",
                file.display()
            )));
        };
        section
            .entries
            .push((k.to_string(), v.trim().to_string(), n));
    }
    Ok(())
}

/// Replaces `${VAR}`; the name of an unset variable is the error.
fn expand(line: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = &after[..end];
        match vars.get(name).cloned().or_else(|| std::env::var(name).ok()) {
            Some(v) => out.push_str(&v),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

type Res = Result<(), (usize, String)>;

fn bad(line: usize, key: &str, value: &str, expected: &str) -> (usize, String) {
    (
        line,
        format!("invalid value \"{value}\" for {key}: {expected}"),
    )
}

fn unsupported(line: usize, section: &str, key: &str) -> (usize, String) {
    (line, format!("key {key} in [{section}] is not supported by logship; remove it or see `logship --help` for an equivalent option"))
}

fn flag(line: usize, key: &str, v: &str) -> Result<bool, (usize, String)> {
    parse_bool(v).map_err(|e| bad(line, key, v, &e))
}

fn size(line: usize, key: &str, v: &str) -> Result<u64, (usize, String)> {
    parse_byte_size(v).map_err(|e| bad(line, key, v, &e))
}

fn seconds(line: usize, key: &str, v: &str) -> Result<Duration, (usize, String)> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| bad(line, key, v, "expected seconds, e.g. 1 or 0.5"))
}

fn service(s: &Section, c: &mut Config) -> Res {
    for (k, v, l) in &s.entries {
        match k.to_ascii_lowercase().as_str() {
            "flush" => {
                let d = seconds(*l, "Flush", v)?;
                c.batch_linger.get_or_insert(d);
            }
            "daemon" if !flag(*l, "Daemon", v)? => {}
            "daemon" => {
                return Err(bad(
                    *l,
                    "Daemon",
                    v,
                    "logship runs in the foreground; use Off",
                ))
            }
            // Served by logship's admin server (--admin-addr, /api/v1/health and
            // /api/v1/metrics/prometheus answer there); logging by --log-level.
            "http_server"
            | "http_listen"
            | "http_port"
            | "log_level"
            | "grace"
            | "parsers_file"
            | "health_check"
            | "hc_errors_count"
            | "hc_retry_failure_count"
            | "hc_period"
            | "coro_stack_size" => {
                tracing::info!(key = %k, "fluent-bit [SERVICE] key handled by logship's own options (--admin-addr, --log-level, --shutdown-timeout)");
            }
            _ => return Err(unsupported(*l, "SERVICE", k)),
        }
    }
    Ok(())
}

fn input(s: &Section, c: &mut Config) -> Res {
    let name = s
        .entries
        .iter()
        .find(|e| e.0.eq_ignore_ascii_case("name"))
        .map(|e| e.1.as_str())
        .unwrap_or("");
    if name != "tail" {
        return Err((
            0,
            format!("[INPUT] Name {name:?} is not supported: logship replaces the tail input"),
        ));
    }
    for (k, v, l) in &s.entries {
        let l = *l;
        match k.to_ascii_lowercase().as_str() {
            "name"
            | "tag"
            | "buffer_chunk_size"
            | "skip_long_lines"
            | "rotate_wait"
            | "db.sync"
            | "db.locking"
            | "db.journal_mode"
            | "inotify_watcher"
            | "skip_empty_lines"
            | "key"
            | "mem_buf_limit_ignore" => {}
            "path" if c.paths.is_empty() => c.paths = split(v),
            "path" => {}
            "exclude_path" if c.excludes.is_empty() => c.excludes = split(v),
            "exclude_path" => {}
            "read_from_head" => {
                let head = flag(l, "Read_from_Head", v)?;
                c.start_at.get_or_insert(if head {
                    crate::config::StartAt::Head
                } else {
                    crate::config::StartAt::End
                });
            }
            "refresh_interval" => {
                let d = seconds(l, "Refresh_Interval", v)?;
                c.rescan_interval.get_or_insert(d);
            }
            "mem_buf_limit" => {
                let b = size(l, "Mem_Buf_Limit", v)?;
                c.max_buffer.get_or_insert(b);
            }
            "buffer_max_size" => {
                let b = size(l, "Buffer_Max_Size", v)?;
                c.max_line_bytes.get_or_insert(b);
            }
            "db" => {
                // fluent-bit keeps an SQLite file; logship keeps its checkpoints beside it.
                let dir = Path::new(v)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                c.data_dir.get_or_insert_with(|| dir.to_path_buf());
            }
            "parser" => {
                c.parse.get_or_insert_with(|| v.clone());
            }
            // fluent-bit's built-in multiline parsers: Java and Go stack traces are
            // indented continuation lines; cri and docker are container log formats.
            "multiline.parser" => {
                for p in split(v) {
                    match p.to_ascii_lowercase().as_str() {
                        "java" | "go" => {
                            c.multiline_indent.get_or_insert(true);
                        }
                        "cri" => {
                            c.parse.get_or_insert_with(|| "cri".into());
                        }
                        "docker" => {
                            c.parse.get_or_insert_with(|| "json".into());
                        }
                        _ => {
                            return Err(bad(
                                l,
                                "multiline.parser",
                                &p,
                                "logship knows java, go, cri and docker; for others give --multiline-start REGEX",
                            ))
                        }
                    }
                }
            }
            _ => return Err(unsupported(l, "INPUT", k)),
        }
    }
    Ok(())
}

fn output(s: &Section, c: &mut Config) -> Res {
    let name = s
        .entries
        .iter()
        .find(|e| e.0.eq_ignore_ascii_case("name"))
        .map(|e| e.1.as_str())
        .unwrap_or("");
    match name {
        "es" | "opensearch" => {}
        "stdout" => return Ok(()),
        other => return Err((0, format!("[OUTPUT] Name {other:?} is not supported: logship ships to es, opensearch or stdout"))),
    }
    let (mut host, mut port, mut tls, mut prefix_path) =
        (None::<String>, None::<u16>, false, String::new());
    let (mut logstash, mut logstash_prefix, mut logstash_date) =
        (false, "logstash".to_string(), "%Y.%m.%d".to_string());
    let mut index = None;
    for (k, v, l) in &s.entries {
        let l = *l;
        match k.to_ascii_lowercase().as_str() {
            "name" | "match" | "match_regex" | "suppress_type_name" | "generate_id"
            | "buffer_size" | "type" | "replace_dots" | "trace_output" | "trace_error"
            | "include_tag_key" | "tag_key" | "retry_limit" | "current_time_index" | "id_key" => {}
            "host" => host = Some(v.clone()),
            "port" => {
                port = Some(
                    v.parse()
                        .map_err(|_| bad(l, "Port", v, "expected a port number"))?,
                )
            }
            "path" => prefix_path = v.trim_end_matches('/').to_string(),
            "index" => index = Some(v.clone()),
            "logstash_format" => logstash = flag(l, "Logstash_Format", v)?,
            "logstash_prefix" => logstash_prefix = v.clone(),
            "logstash_dateformat" => logstash_date = v.clone(),
            "http_user" => {
                c.es_user.get_or_insert_with(|| v.clone());
            }
            "http_passwd" => {
                if c.es_password.is_none() && c.es_password_file.is_none() {
                    c.es_password = Some(Secret::new(v.clone()));
                }
            }
            "http_api_key" => {
                if c.es_api_key.is_none() && c.es_api_key_file.is_none() {
                    c.es_api_key = Some(Secret::new(v.clone()));
                }
            }
            "tls" => tls = flag(l, "tls", v)?,
            "tls.verify" => {
                let verify = flag(l, "tls.verify", v)?;
                c.es_tls_insecure.get_or_insert(!verify);
            }
            "tls.ca_file" => {
                c.es_ca_file.get_or_insert_with(|| PathBuf::from(v));
            }
            "compress" => match v.to_ascii_lowercase().as_str() {
                "gzip" => {
                    c.es_gzip.get_or_insert(true);
                }
                "" | "off" | "none" => {}
                _ => return Err(bad(l, "Compress", v, "expected gzip")),
            },
            "workers" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| bad(l, "Workers", v, "expected a number"))?;
                c.es_max_in_flight = n.max(1);
            }
            "time_key" if v == "@timestamp" => {}
            _ => return Err(unsupported(l, "OUTPUT", k)),
        }
    }
    if c.es_index.is_none() && c.es_data_stream.is_none() {
        c.es_index = Some(if logstash {
            format!("{logstash_prefix}-{logstash_date}")
        } else {
            index.unwrap_or_else(|| "fluent-bit".to_string())
        });
    }
    let host = host.unwrap_or_else(|| "127.0.0.1".to_string());
    // ELASTICSEARCH_HOST set and the config pointing at it too (`Host ${ELASTICSEARCH_HOST}`):
    // the config adds port, scheme and path.
    let same_host = c.es_host.as_deref() == Some(host.as_str());
    if c.es_urls.is_empty() && (c.es_host.is_none() || same_host) {
        let scheme = if tls { "https" } else { "http" };
        let port = port.or(c.es_port).unwrap_or(9200);
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        c.es_urls = vec![format!("{scheme}://{host}:{port}{prefix_path}")];
        c.es_host = None;
    }
    Ok(())
}

fn split(v: &str) -> Vec<String> {
    v.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, Error> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fluent-bit.conf");
        std::fs::write(&p, text).unwrap();
        let mut c = Config::default();
        apply(&p, &mut c).map(|()| c)
    }

    #[test]
    fn maps_the_guide_config() {
        std::env::set_var(
            "LOGSHIP_TEST_ES_HOST",
            "elasticsearch.logging.svc.cluster.local",
        );
        let c = load(
            "[SERVICE]\n    Flush 1\n    HTTP_Server On\n    HTTP_Port 2020\n\n[INPUT]\n    Name tail\n    Path /var/log/app/*.log\n    Read_from_Head true\n    Mem_Buf_Limit 50MB\n    DB /data/flb.db\n    Refresh_Interval 5\n\n[OUTPUT]\n    Name es\n    Match *\n    Host ${LOGSHIP_TEST_ES_HOST}\n    Port 9200\n    Logstash_Format On\n    Logstash_Prefix app\n    Suppress_Type_Name On\n    Buffer_Size False\n    HTTP_User elastic\n    HTTP_Passwd s3cret\n    Compress gzip\n",
        )
        .unwrap();
        assert_eq!(c.paths, ["/var/log/app/*.log"]);
        assert_eq!(c.start_at, Some(crate::config::StartAt::Head));
        assert_eq!(c.max_buffer, Some(50_000_000));
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/data")));
        assert_eq!(c.rescan_interval, Some(Duration::from_secs(5)));
        assert_eq!(
            c.es_urls,
            ["http://elasticsearch.logging.svc.cluster.local:9200"]
        );
        assert_eq!(c.es_index.as_deref(), Some("app-%Y.%m.%d"));
        assert_eq!(c.es_user.as_deref(), Some("elastic"));
        assert_eq!(c.es_password.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert_eq!(c.es_gzip, Some(true));
    }

    #[test]
    fn multiline_parsers_map_to_logship_options() {
        let c =
            load("[INPUT]\n    Name tail\n    Path /x\n    multiline.parser cri, java\n").unwrap();
        assert_eq!(c.multiline_indent, Some(true));
        assert_eq!(c.parse.as_deref(), Some("cri"));
        let e = load("[INPUT]\n    Name tail\n    Path /x\n    multiline.parser ruby\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("multiline.parser") && e.contains("ruby"), "{e}");
    }

    #[test]
    fn unsupported_keys_and_unset_vars_are_named() {
        let e = load("[INPUT]\n    Name tail\n    Path /x\n    Multiline On\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key Multiline in [INPUT]"), "{e}");
        assert!(e.contains(":4:"), "{e}");
        let e = load("[INPUT]\n    Name tail\n    Path ${LOGSHIP_TEST_SURELY_UNSET}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOGSHIP_TEST_SURELY_UNSET"), "{e}");
        let e = load("[INPUT]\n    Name systemd\n").unwrap_err().to_string();
        assert!(e.contains("systemd"), "{e}");
    }
}
