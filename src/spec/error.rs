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
        let message = e.message().trim().replace('\n', " ");
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {col}: ")
            }
            None => String::new(),
        };
        SpecError::Parse { location, message }
    }
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
