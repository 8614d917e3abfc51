//! User patterns: a regex with named captures, one field per capture.
use std::collections::HashMap;

use regex::Regex;

use super::{put_time, time, Ctx, FieldType, ParseError, Record};

#[derive(Debug, Clone)]
pub(super) struct Pattern {
    re: Regex,
    /// (group index, field name, type, is the timestamp).
    groups: Vec<(usize, String, FieldType, bool)>,
}

impl Pattern {
    pub(super) fn new(
        pattern: &str,
        types: &HashMap<String, FieldType>,
    ) -> Result<Pattern, ParseError> {
        let re = Regex::new(pattern).map_err(|e| ParseError::Pattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        let groups: Vec<_> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n)))
            .map(|(i, n)| {
                let ty = types.get(n).copied().unwrap_or(FieldType::String);
                (i, n.to_string(), ty, n == "timestamp")
            })
            .collect();
        if groups.is_empty() {
            return Err(ParseError::Pattern {
                pattern: pattern.to_string(),
                reason: "it has no named captures; name the fields with (?P<name>...)".to_string(),
            });
        }
        for name in types.keys() {
            if !groups.iter().any(|g| &g.1 == name) {
                return Err(ParseError::Pattern {
                    pattern: pattern.to_string(),
                    reason: format!(
                        "a type is given for {name:?} but the pattern has no capture of that name"
                    ),
                });
            }
        }
        Ok(Pattern { re, groups })
    }

    pub(super) fn parse(
        &self,
        line: &str,
        rec: &mut Record,
        ctx: &Ctx,
    ) -> Result<(), &'static str> {
        let caps = self
            .re
            .captures(line)
            .ok_or("regex: line does not match --pattern")?;
        for (i, name, ty, is_time) in &self.groups {
            let Some(m) = caps.get(*i) else { continue };
            let v = m.as_str();
            if *is_time {
                let now = ctx.now();
                let t = match &ctx.time_format {
                    Some(f) => f.parse(v, ctx.zone, now),
                    None => time::parse_any(v, ctx.zone, now),
                };
                match t {
                    Some(t) => put_time(rec, t),
                    None => {
                        return Err(
                            "regex: the timestamp capture does not parse (check --time-format)",
                        )
                    }
                }
                continue;
            }
            match ty {
                FieldType::Int => match v.trim().parse::<i64>() {
                    Ok(n) => rec.int(name, n),
                    Err(_) => rec.str(name, v),
                },
                FieldType::Float => match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => rec.float(name, n),
                    _ => rec.str(name, v),
                },
                FieldType::Bool => match v.trim().to_ascii_lowercase().as_str() {
                    "true" => rec.bool(name, true),
                    "false" => rec.bool(name, false),
                    _ => rec.str(name, v),
                },
                FieldType::String => rec.str(name, v),
            }
        }
        Ok(())
    }
}
