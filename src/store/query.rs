//! Filtering and sorting runs: the language of `icl-lab ls` flags and the TUI's `/` filter.
//!
//! A query is space-separated terms: `task:linear arch:mamba status:done tag:paper seed:1`, and
//! free words matched against the name, task, arch and tags. Field values match by substring,
//! case-insensitive; every term must match.

use std::cmp::Ordering;
use std::str::FromStr;

use super::RunRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Task(String),
    Arch(String),
    Status(String),
    Tag(String),
    Seed(u64),
    Text(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<Term>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("unknown filter field {field:?} in {term:?}; use task:, arch:, status:, tag:, seed:")]
    Field { field: String, term: String },
    #[error("bad seed in {0:?}: expected a number")]
    Seed(String),
    #[error("unknown status {0:?}; one of queued, running, done, failed, cancelled, diverged, interrupted")]
    Status(String),
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let term = match word.split_once(':') {
                Some((field, value)) => {
                    let value = value.to_lowercase();
                    match field.to_lowercase().as_str() {
                        "task" => Term::Task(value),
                        "arch" | "model" => Term::Arch(value),
                        "status" => {
                            if !super::Status::LABELS.iter().any(|l| l.starts_with(&value)) {
                                return Err(QueryError::Status(value));
                            }
                            Term::Status(value)
                        }
                        "tag" => Term::Tag(value),
                        "seed" => Term::Seed(value.parse().map_err(|_| QueryError::Seed(word.into()))?),
                        _ => return Err(QueryError::Field { field: field.into(), term: word.into() }),
                    }
                }
                None => Term::Text(word.to_lowercase()),
            };
            terms.push(term);
        }
        Ok(Query { terms })
    }

    pub fn matches(&self, r: &RunRecord) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Task(v) => r.task().contains(v.as_str()),
            Term::Arch(v) => r.arch().contains(v.as_str()),
            Term::Status(v) => r.status.label().starts_with(v.as_str()),
            Term::Tag(v) => r.tags.iter().any(|t| t.to_lowercase().contains(v.as_str())),
            Term::Seed(s) => r.spec.seed == *s,
            Term::Text(w) => {
                r.spec.name.to_lowercase().contains(w.as_str())
                    || r.task().contains(w.as_str())
                    || r.arch().contains(w.as_str())
                    || r.tags.iter().any(|t| t.to_lowercase().contains(w.as_str()))
                    || r.id.to_string() == *w
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// What runs can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Id,
    Status,
    Task,
    Arch,
    Params,
    Step,
    Loss,
    Error,
    Created,
    Name,
}

impl SortKey {
    pub const ALL: [SortKey; 10] = [
        SortKey::Id,
        SortKey::Status,
        SortKey::Task,
        SortKey::Arch,
        SortKey::Params,
        SortKey::Step,
        SortKey::Loss,
        SortKey::Error,
        SortKey::Created,
        SortKey::Name,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Status => "status",
            SortKey::Task => "task",
            SortKey::Arch => "arch",
            SortKey::Params => "params",
            SortKey::Step => "step",
            SortKey::Loss => "loss",
            SortKey::Error => "error",
            SortKey::Created => "created",
            SortKey::Name => "name",
        }
    }

    pub fn compare(self, a: &RunRecord, b: &RunRecord) -> Ordering {
        // Missing numbers sort last.
        fn opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Ordering {
            match (a, b) {
                (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        let primary = match self {
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Status => a.status.label().cmp(b.status.label()),
            SortKey::Task => a.task().cmp(b.task()),
            SortKey::Arch => a.arch().cmp(b.arch()),
            SortKey::Params => opt(a.params, b.params),
            SortKey::Step => a.step.cmp(&b.step),
            SortKey::Loss => opt(a.last.as_ref().map(|m| m.loss), b.last.as_ref().map(|m| m.loss)),
            SortKey::Error => opt(a.final_error, b.final_error),
            SortKey::Created => a.created.cmp(&b.created),
            SortKey::Name => a.spec.name.cmp(&b.spec.name),
        };
        primary.then(a.id.cmp(&b.id))
    }
}

impl FromStr for SortKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SortKey::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = SortKey::ALL.iter().map(|k| k.name()).collect();
            format!("unknown sort key {s:?}; one of {}", names.join(", "))
        })
    }
}

/// Run ids from arguments like `3`, `3,5`, `7-9`.
pub fn parse_ids(args: &[String]) -> Result<Vec<u64>, String> {
    let mut ids = Vec::new();
    for arg in args {
        for part in arg.split(',').filter(|p| !p.is_empty()) {
            let num = |s: &str| s.trim().parse::<u64>().map_err(|_| format!("bad run id {s:?} in {arg:?}"));
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b || b - a > 1_000_000 {
                        return Err(format!("bad run id range {part:?}"));
                    }
                    ids.extend(a..=b);
                }
                None => ids.push(num(part)?),
            }
        }
    }
    if ids.is_empty() {
        return Err("no run ids given".into());
    }
    Ok(ids)
}
