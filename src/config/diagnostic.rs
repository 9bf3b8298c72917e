//! A problem in a soa-configs file, shown as `path:line:column: message`.

use std::fmt;

/// One user-facing problem with a position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file as the user knows it (`soa-configs/svc/flink-c.yaml`).
    pub path: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// What is wrong, starting with the subject (`svc.main: spec.x: ...`).
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at a position.
    #[must_use]
    pub fn at(path: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_owned(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    /// A diagnostic about a whole file.
    #[must_use]
    pub fn file(path: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.path, self.message)
            }
            (Some(line), None) => write!(f, "{}:{line}: {}", self.path, self.message),
            _ => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_compiler() {
        assert_eq!(
            Diagnostic::at("s/flink-c.yaml", 3, 5, "s.main: bad").to_string(),
            "s/flink-c.yaml:3:5: s.main: bad"
        );
        assert_eq!(
            Diagnostic::file("s/deployments.json", "bad").to_string(),
            "s/deployments.json: bad"
        );
    }
}
