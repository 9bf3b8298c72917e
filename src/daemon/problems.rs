//! What is wrong now, said once: each problem is logged when it appears,
//! when its message changes and when it clears, counted once in
//! `flink_gitops_errors_total{category}` when it appears, and listed on
//! `/status` (`problems`) for as long as it lasts.

use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// One problem, keyed by its kind and subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A bounded label: `load`, `render`, `source`, `prune_held`,
    /// `mass_prune_blocked`, `prune_failed`, or a write error's category.
    pub kind: &'static str,
    /// What it is about: a file, a service, an object, or the cluster.
    pub subject: String,
    /// What is wrong, and what to do when something can be done.
    pub message: String,
}

impl Problem {
    #[must_use]
    pub fn new(kind: &'static str, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            kind,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Known {
    message: String,
    since: SystemTime,
}

/// The problems of the last cycles.
#[derive(Debug, Default)]
pub struct Problems {
    current: BTreeMap<(&'static str, String), Known>,
}

/// What changed in an update, for the caller to count.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Kinds of the problems that appeared.
    pub appeared: Vec<&'static str>,
    pub cleared: usize,
}

impl Problems {
    /// Takes in the problems a cycle found. `complete`: the cycle saw
    /// everything, so what it did not find has cleared; otherwise (a cycle
    /// of some services) nothing clears.
    pub fn update(&mut self, found: Vec<Problem>, complete: bool) -> Changes {
        let mut changes = Changes::default();
        let mut seen = BTreeMap::new();
        for problem in found {
            let key = (problem.kind, problem.subject.clone());
            match self.current.get_mut(&key) {
                Some(known) if known.message == problem.message => {}
                Some(known) => {
                    tracing::warn!(kind = problem.kind, subject = %problem.subject, "{}", problem.message);
                    known.message.clone_from(&problem.message);
                }
                None => {
                    tracing::warn!(kind = problem.kind, subject = %problem.subject, "{}", problem.message);
                    changes.appeared.push(problem.kind);
                    self.current.insert(
                        key.clone(),
                        Known {
                            message: problem.message.clone(),
                            since: SystemTime::now(),
                        },
                    );
                }
            }
            seen.insert(key, ());
        }
        if complete {
            self.current.retain(|(kind, subject), _| {
                let stays = seen.contains_key(&(*kind, subject.clone()));
                if !stays {
                    tracing::info!(kind, %subject, "resolved");
                    changes.cleared += 1;
                }
                stays
            });
        }
        changes
    }

    /// For `/status`: every current problem, oldest first.
    #[must_use]
    pub fn to_json(&self) -> Json {
        let mut list: Vec<(&(&'static str, String), &Known)> = self.current.iter().collect();
        list.sort_by_key(|(_, known)| known.since);
        list.iter()
            .map(|((kind, subject), known)| {
                json!({
                    "kind": kind,
                    "subject": subject,
                    "message": known.message,
                    "since": humantime::format_rfc3339_seconds(known.since).to_string(),
                })
            })
            .collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.current.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_counted_once_and_clears_only_after_a_complete_cycle() {
        let mut problems = Problems::default();
        let bad = || Problem::new("load", "svc", "svc/flink-c1.yaml:3:1: invalid YAML");
        let first = problems.update(vec![bad()], true);
        assert_eq!(first.appeared, ["load"]);
        for _ in 0..3 {
            assert_eq!(problems.update(vec![bad()], true), Changes::default());
        }
        assert_eq!(problems.update(Vec::new(), false), Changes::default());
        assert_eq!(problems.len(), 1, "a partial cycle clears nothing");
        let cleared = problems.update(Vec::new(), true);
        assert_eq!(cleared.cleared, 1);
        assert!(problems.is_empty());
        assert_eq!(problems.to_json(), json!([]));
    }

    #[test]
    fn a_changed_message_is_said_again_but_not_counted_again() {
        let mut problems = Problems::default();
        problems.update(vec![Problem::new("source", "git", "timed out")], true);
        let changed = problems.update(vec![Problem::new("source", "git", "refused")], true);
        assert!(changed.appeared.is_empty());
        assert_eq!(problems.to_json()[0]["message"], "refused");
    }
}
