//! A path to a field of an object, shown as `spec.flink_conf["state.backend.type"]`.

use std::fmt;

/// A sequence of map keys from the object root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// The object itself.
    #[must_use]
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// A path from its keys.
    #[must_use]
    pub fn of(keys: &[&str]) -> Self {
        FieldPath(keys.iter().map(|k| (*k).to_owned()).collect())
    }

    /// True when the path's keys are exactly `keys`.
    #[must_use]
    pub fn is(&self, keys: &[&str]) -> bool {
        // Leaf first: paths that differ mostly differ there.
        self.0.len() == keys.len()
            && self
                .0
                .iter()
                .rev()
                .zip(keys.iter().rev())
                .all(|(a, b)| a == b)
    }

    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, key: &str) {
        self.0.push(key.to_owned());
    }

    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// The keys, from the root.
    #[must_use]
    pub fn keys(&self) -> &[String] {
        &self.0
    }

    /// True when `self` equals `prefix` or lies below it.
    #[must_use]
    pub fn starts_with(&self, prefix: &[&str]) -> bool {
        self.0.len() >= prefix.len() && self.0.iter().zip(prefix).all(|(a, b)| a == b)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, key) in self.0.iter().enumerate() {
            let plain = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            // Label and annotation keys are shown whole, as kubectl does.
            if plain {
                if index > 0 {
                    f.write_str(".")?;
                }
                f.write_str(key)?;
            } else {
                write!(f, "[{key:?}]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_dotted_keys_in_brackets() {
        assert_eq!(
            FieldPath::of(&["spec", "flink_conf", "state.backend.type"]).to_string(),
            r#"spec.flink_conf["state.backend.type"]"#
        );
        assert_eq!(
            FieldPath::of(&["spec", "taskmanager", "cpus"]).to_string(),
            "spec.taskmanager.cpus"
        );
    }

    #[test]
    fn prefix_test() {
        let path = FieldPath::of(&["metadata", "labels", "a"]);
        assert!(path.starts_with(&["metadata", "labels"]));
        assert!(!path.starts_with(&["spec"]));
    }
}
