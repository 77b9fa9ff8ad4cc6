use std::fmt;
use std::path::Path;

/// One problem with a spec, naming the field and what it must be.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{location}{message}")]
    Parse { location: String, message: String },
    #[error("{field} {rule}, got {got}")]
    Invalid { field: String, rule: String, got: String },
}

impl SpecError {
    pub(crate) fn from_toml(e: &toml::de::Error, text: &str) -> Self {
        // toml's Display spans several lines with a source excerpt; keep one line.
        let mut message = e.message().trim().replace('\n', " ");
        let location = match e.span() {
            Some(span) => {
                let mut at = span.start.min(text.len());
                // Inside [task], [model] and [[models]] (serde's tagged enums buffer their
                // fields), a bad value is reported at the table, without its key: find the key.
                if let Some((key, key_at)) = key_in_table_with_bad_value(text, at, &message) {
                    message = format!("{key}: {message}");
                    at = key_at;
                }
                let before = &text[..at];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {col}: ")
            }
            None => String::new(),
        };
        SpecError::Parse { location, message }
    }
}

/// The value an "invalid type" or "invalid value" message quotes (serde's `Unexpected`), as
/// TOML: integer `-1`, floating point `1.5`, boolean `true`, string "x".
fn quoted_value(message: &str) -> Option<toml::Value> {
    let literal = ["integer `", "floating point `", "boolean `"].iter().find_map(|kind| {
        let start = message.find(kind)? + kind.len();
        Some(message[start..].split('`').next()?.to_string())
    });
    let literal = match literal {
        Some(l) if l == "NaN" => "nan".to_string(),
        Some(l) => l,
        None => {
            let start = message.find("string \"")? + "string ".len();
            let end = message[start + 1..].find("\", expected")? + start + 2;
            message[start..end].to_string()
        }
    };
    value_of(&literal)
}

/// `literal` read as a TOML value.
fn value_of(literal: &str) -> Option<toml::Value> {
    let mut table: toml::Table = toml::from_str(&format!("v = {literal}")).ok()?;
    table.remove("v")
}

fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    match (a, b) {
        (toml::Value::Float(x), toml::Value::Float(y)) if x.is_nan() && y.is_nan() => true,
        _ => a == b,
    }
}

/// For an error that toml reports at a table header (`at` on a `[` line) with a
/// message quoting a value: the first key of that table (up to the next header; of an array
/// of tables, reported at its first, up to the next other header) whose value is that value,
/// and where it is.
fn key_in_table_with_bad_value(text: &str, at: usize, message: &str) -> Option<(String, usize)> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let header = |line: &str| {
        let code = line[..line.find('#').unwrap_or(line.len())].trim();
        code.starts_with('[').then(|| code.to_string())
    };
    let first_line = text[line_start..].split_inclusive('\n').next()?;
    let table = header(first_line)?;
    let bad = quoted_value(message)?;
    let mut offset = line_start + first_line.len();
    for line in text[offset..].split_inclusive('\n') {
        if let Some(next) = header(line) {
            if next != table || !table.starts_with("[[") {
                break;
            }
        }
        let code = &line[..line.find('#').unwrap_or(line.len())];
        if let Some(eq) = code.find('=') {
            let key = code[..eq].trim();
            let value = code[eq + 1..].trim();
            if !key.is_empty() && value_of(value).is_some_and(|v| same_value(&v, &bad)) {
                let key_at = offset + code.find(key).unwrap_or(0);
                return Some((key.to_string(), key_at));
            }
        }
        offset += line.len();
    }
    None
}

/// All the problems found in one spec.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub fn one(e: SpecError) -> Self {
        SpecErrors(vec![e])
    }

    pub(crate) fn with_path(mut self, path: &Path) -> Self {
        for e in &mut self.0 {
            if let SpecError::Parse { location, .. } = e {
                *location = format!("{}: {location}", path.display());
            }
        }
        self
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
