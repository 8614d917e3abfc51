//! `${VAR}` substitution for `--render`: `${NAME}` becomes the environment value of NAME,
//! `${NAME:-default}` the default when NAME is unset or empty. An unset variable without a
//! default is left as written, so configs that use the same syntax themselves (nginx's
//! `${host}`) survive. `$NAME` without braces is never touched, and files that are not UTF-8
//! (keys, keystores) are copied unchanged.
use std::borrow::Cow;

/// Renders `data` with the process environment.
pub fn render(data: &[u8]) -> Cow<'_, [u8]> {
    render_with(data, |name| std::env::var(name).ok())
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Renders `data`, looking names up with `lookup`.
pub fn render_with(data: &[u8], lookup: impl Fn(&str) -> Option<String>) -> Cow<'_, [u8]> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Cow::Borrowed(data);
    };
    if !text.contains("${") {
        return Cow::Borrowed(data);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let value = if is_name(name) {
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => Some(v),
                (None, Some(d)) => Some(d.to_string()),
                (None, None) => None,
            }
        } else {
            None
        };
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Cow::Owned(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        let env = |n: &str| match n {
            "UPSTREAM_HOST" => Some("app:8080".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        String::from_utf8(render_with(s.as_bytes(), env).into_owned()).unwrap()
    }

    #[test]
    fn substitutes_known_names_and_keeps_the_rest() {
        assert_eq!(
            r("proxy_pass http://${UPSTREAM_HOST};"),
            "proxy_pass http://app:8080;"
        );
        assert_eq!(
            r("${MISSING:-localhost:80} ${EMPTY:-d} ${EMPTY}."),
            "localhost:80 d ."
        );
        assert_eq!(
            r("set $x ${host}; $UPSTREAM_HOST"),
            "set $x ${host}; $UPSTREAM_HOST"
        );
        assert_eq!(r("${not a name} ${UNCLOSED"), "${not a name} ${UNCLOSED");
        assert_eq!(r("no vars"), "no vars");
        let binary = [0xff, b'$', b'{', b'A', b'}'];
        assert_eq!(&render_with(&binary, |_| Some("x".into()))[..], &binary[..]);
    }
}
