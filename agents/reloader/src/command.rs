//! Commands given as one string (`--validate-command`, `--command`): split into words like a
//! shell would (single and double quotes, backslash escapes), run without a shell, with a time
//! limit, their output captured for the log.
use std::{process::Stdio, time::Duration};

use tokio::process::Command;

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Program, then arguments.
    pub words: Vec<String>,
}

/// How a command ended when it did not succeed.
#[derive(Debug)]
pub struct Failure {
    /// What happened, with the tail of the command's output.
    pub message: String,
    /// True when the command ran and exited non-zero (a verdict), false when it could not be
    /// run or did not finish (worth retrying).
    pub exited: bool,
}

fn not_run(message: String) -> Failure {
    Failure {
        message,
        exited: false,
    }
}

impl CommandLine {
    /// Splits `s` into words: whitespace separates, quotes group, `\` escapes outside single
    /// quotes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => cur.push(c),
                            None => return Err("an unclosed single quote".into()),
                        }
                    }
                }
                '"' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                                Some(c) => {
                                    cur.push('\\');
                                    cur.push(c);
                                }
                                None => return Err("an unclosed double quote".into()),
                            },
                            Some(c) => cur.push(c),
                            None => return Err("an unclosed double quote".into()),
                        }
                    }
                }
                '\\' => {
                    in_word = true;
                    match chars.next() {
                        Some(c) => cur.push(c),
                        None => return Err("a trailing backslash".into()),
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    cur.push(c);
                }
            }
        }
        if in_word {
            words.push(cur);
        }
        if words.is_empty() {
            return Err("a command such as `nginx -t` (got nothing)".into());
        }
        Ok(CommandLine { words })
    }

    /// The program name, for logs.
    pub fn program(&self) -> &str {
        &self.words[0]
    }

    /// Runs the command with `RELOADER_HASH=hash`; `Ok` on exit status 0, else what went wrong
    /// with the tail of its output. Killed after `timeout`.
    pub async fn run(&self, hash: &str, timeout: Duration) -> Result<(), Failure> {
        let mut cmd = Command::new(&self.words[0]);
        cmd.args(&self.words[1..])
            .env("RELOADER_HASH", hash)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| not_run(format!("cannot start {}: {e}", self.program())))?;
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(not_run(format!("cannot wait for {}: {e}", self.program()))),
            Err(_) => {
                return Err(not_run(format!(
                    "{} did not finish within {} and was killed",
                    self.program(),
                    humantime::format_duration(timeout)
                )))
            }
        };
        if out.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        let text = text.trim();
        let tail: String = if text.len() > 600 {
            let cut = text.len() - 600;
            let cut = (cut..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(cut);
            format!("...{}", &text[cut..])
        } else {
            text.to_string()
        };
        Err(Failure {
            message: format!("{} exited with {}: {tail}", self.program(), out.status),
            exited: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        CommandLine::parse(s).unwrap().words
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            words("nginx -t -c /etc/nginx/nginx.conf"),
            ["nginx", "-t", "-c", "/etc/nginx/nginx.conf"]
        );
        assert_eq!(
            words("sh -c 'echo $A && exit 1'"),
            ["sh", "-c", "echo $A && exit 1"]
        );
        assert_eq!(words(r#"a "b c" d\ e "x\"y""#), ["a", "b c", "d e", "x\"y"]);
        assert_eq!(words("a ''"), ["a", ""]);
        assert!(CommandLine::parse("  ").is_err());
        assert!(CommandLine::parse("sh -c 'oops").is_err());
    }

    #[tokio::test]
    async fn runs_and_reports_failures() {
        let ok = CommandLine::parse("sh -c 'test \"$RELOADER_HASH\" = abc'").unwrap();
        ok.run("abc", Duration::from_secs(10)).await.unwrap();
        let bad = CommandLine::parse("sh -c 'echo broken config >&2; exit 3'").unwrap();
        let e = bad.run("abc", Duration::from_secs(10)).await.unwrap_err();
        assert!(
            e.exited && e.message.contains("broken config") && e.message.contains('3'),
            "{}",
            e.message
        );
        let slow = CommandLine::parse("sleep 5").unwrap();
        let e = slow
            .run("abc", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(!e.exited && e.message.contains("killed"), "{}", e.message);
        let missing = CommandLine::parse("/nonexistent/prog").unwrap();
        assert!(missing
            .run("abc", Duration::from_secs(1))
            .await
            .unwrap_err()
            .message
            .contains("cannot start"));
    }
}
