//! `--parse FORMAT`: log2json's line formats (`common::parse`, shared code) applied to each
//! line. The format's fields go to the record's root (`message`, `@timestamp` when the line
//! has one, `status`, `method`...); a line that does not parse keeps its raw `message` and gets
//! `parse_error`, never dropped.
use common::parse::{Outcome, Parser, Record};

use crate::{config::ParseSpec, Error};

/// A parser and its reusable record buffer.
#[derive(Debug)]
pub struct LineParser {
    parser: Parser,
    rec: Record,
}

impl LineParser {
    /// The parser for a checked format (nginx, combined, syslog, json, logfmt, log4j, cri,
    /// a regex...).
    pub fn new(spec: &ParseSpec) -> Result<Self, Error> {
        let parser = Parser::new(spec.format.clone(), spec.options.clone())
            .map_err(|e| Error::Config(format!("invalid --parse {}: {e}", spec.format)))?;
        Ok(LineParser {
            parser,
            rec: Record::new(),
        })
    }

    /// Parses `line` into the record buffer (opened, not closed) and returns it with whether
    /// the line parsed.
    pub fn parse(&mut self, line: &str) -> (&mut Record, bool) {
        self.rec.begin();
        let ok = self.parser.parse(line, &mut self.rec) == Outcome::Parsed;
        (&mut self.rec, ok)
    }
}
