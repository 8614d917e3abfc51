//! `--parse FORMAT`: log2json's line formats (`common::parse`, shared code) applied to each
//! line. The format's fields go to the record's root (`message`, `@timestamp` when the line
//! has one, `status`, `method`...); a line that does not parse keeps its raw `message` and gets
//! `parse_error`, never dropped.
use common::parse::{Format, Options, Outcome, Parser, Record};

use crate::Error;

/// A parser and its reusable record buffer.
#[derive(Debug)]
pub struct LineParser {
    parser: Parser,
    rec: Record,
}

impl LineParser {
    /// The parser for format `name` (nginx, combined, syslog, json, logfmt, log4j, cri...).
    pub fn new(name: &str) -> Result<Self, Error> {
        let format: Format = name.parse().map_err(|e: String| {
            Error::Config(format!("invalid value \"{name}\" for --parse: {e}"))
        })?;
        let parser = Parser::new(format, Options::default())
            .map_err(|e| Error::Config(format!("invalid value \"{name}\" for --parse: {e}")))?;
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
