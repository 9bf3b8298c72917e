//! Where soa-configs come from. Every source produces the same [`Snapshot`]:
//! the bytes of the files the reconciler reads, per service, so that the
//! config stage never touches a filesystem or a repository.

pub mod git;
mod local;

pub use local::{DirListing, read_dir, read_dir_for_cluster};

use std::collections::BTreeMap;

/// The soa-configs files the pipeline needs, read at one point in time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// How paths are shown to users: the directory, or `repo@revision`.
    pub root: String,
    /// The commit, when the snapshot comes from git.
    pub revision: Option<String>,
    /// Every service folder, including those without files of interest.
    pub services: BTreeMap<String, ServiceFiles>,
}

/// The files of one service folder, keyed by their path inside the folder
/// (`flink-pnw-prod.yaml`, `autotuned_defaults/flink-pnw-prod.yaml`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceFiles {
    pub files: BTreeMap<String, Vec<u8>>,
    /// Entries the source would not read. A service with any is unknown:
    /// its instances may be missing from `files`, so none may be pruned.
    pub refused: Vec<Refusal>,
}

/// An entry of a service folder that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The path inside the service folder; empty for the folder itself.
    pub path: String,
    pub reason: String,
}

impl ServiceFiles {
    /// A service folder that could not be read at all.
    #[must_use]
    pub fn refused(reason: impl Into<String>) -> Self {
        ServiceFiles {
            files: BTreeMap::new(),
            refused: vec![Refusal {
                path: String::new(),
                reason: reason.into(),
            }],
        }
    }

    /// The refusal of a file of `size` bytes over `limit`.
    fn refuse_size(&mut self, path: impl Into<String>, size: u64, limit: usize) {
        self.refuse(
            path,
            format!("the file is {size} bytes, over {limit} bytes (limit max_document_bytes)"),
        );
    }

    fn refuse(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.refused.push(Refusal {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

impl Snapshot {
    /// The user-facing path of a file of `service`.
    #[must_use]
    pub fn display_path(&self, service: &str, file: &str) -> String {
        display_path(&self.root, service, file)
    }
}

/// How the path of `file` in `service` under `root` is shown to users.
#[must_use]
pub fn display_path(root: &str, service: &str, file: &str) -> String {
    format!("{}/{service}/{file}", root.trim_end_matches('/'))
}

/// Which files of a service folder the pipeline reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSelection {
    /// Instance file prefixes (`flink`, `flinkeks`): `<prefix>-<cluster>.yaml`
    /// and `autotuned_defaults/<prefix>-<cluster>.yaml` are read.
    pub file_prefixes: Vec<String>,
    /// A larger file is refused before it is read (`limits.max_document_bytes`),
    /// so that one huge file cannot exhaust the reconciler's memory.
    pub max_file_bytes: usize,
}

impl Default for FileSelection {
    fn default() -> Self {
        FileSelection {
            file_prefixes: Vec::new(),
            max_file_bytes: crate::config::yaml::Limits::default().max_document_bytes,
        }
    }
}

impl FileSelection {
    /// True for the files the pipeline reads: `service.yaml`,
    /// `deployments.json` and the instance files of the configured prefixes.
    #[must_use]
    pub fn wants(&self, path_in_service: &str) -> bool {
        self.wants_for(path_in_service, None)
    }

    /// Like [`FileSelection::wants`], but with `Some(cluster)` only that
    /// cluster's instance files are wanted (`render`, `diff` and `apply` need
    /// no other cluster; `validate` without `--cluster` reads them all).
    #[must_use]
    pub fn wants_for(&self, path_in_service: &str, cluster: Option<&str>) -> bool {
        if path_in_service == "service.yaml" || path_in_service == "deployments.json" {
            return true;
        }
        let name = path_in_service
            .strip_prefix("autotuned_defaults/")
            .unwrap_or(path_in_service);
        if name.contains('/') {
            return false;
        }
        let Some(stem) = name.strip_suffix(".yaml") else {
            return false;
        };
        self.file_prefixes.iter().any(|prefix| {
            cluster_of_stem(stem, prefix).is_some_and(|found| cluster.is_none_or(|c| c == found))
        })
    }

    /// The clusters an instance file name is for, one per matching prefix:
    /// `flink-pnw-prod.yaml` with the prefix `flink` is `pnw-prod`. Nothing
    /// for any other file.
    pub fn clusters_of<'s, 'n: 's>(
        &'s self,
        file_name: &'n str,
    ) -> impl Iterator<Item = &'n str> + 's {
        let stem = file_name.strip_suffix(".yaml");
        self.file_prefixes
            .iter()
            .filter_map(move |prefix| cluster_of_stem(stem?, prefix))
    }
}

/// `<prefix>-<cluster>` to `<cluster>`.
fn cluster_of_stem<'n>(stem: &'n str, prefix: &str) -> Option<&'n str> {
    stem.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .filter(|cluster| !cluster.is_empty())
}

/// Why a source could not produce a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("failed to read the soa-configs directory {path}")]
    ReadDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_reads_instance_files_of_configured_prefixes_only() {
        let selection = FileSelection {
            file_prefixes: vec!["flink".into(), "flinkeks".into()],
            ..FileSelection::default()
        };
        for wanted in [
            "service.yaml",
            "deployments.json",
            "flink-pnw-prod.yaml",
            "flinkeks-pnw-prod.yaml",
            "autotuned_defaults/flink-pnw-prod.yaml",
        ] {
            assert!(selection.wants(wanted), "{wanted}");
        }
        assert!(selection.wants_for("flink-pnw-prod.yaml", Some("pnw-prod")));
        assert!(selection.wants_for("service.yaml", Some("pnw-prod")));
        assert!(selection.wants_for("deployments.json", Some("pnw-prod")));
        assert!(selection.wants_for(
            "autotuned_defaults/flinkeks-pnw-prod.yaml",
            Some("pnw-prod")
        ));
        assert!(!selection.wants_for("flink-norcal-devc.yaml", Some("pnw-prod")));
        assert!(!selection.wants_for("flink-pnw-prod-2.yaml", Some("pnw-prod")));
        for unwanted in [
            "kubernetes-pnw-prod.yaml",
            "flink.yaml",
            "flink-.yaml",
            "flinkx-pnw-prod.yaml",
            "monitoring.yaml",
            "autotuned_defaults/kubernetes-pnw-prod.yaml",
            "nested/flink-pnw-prod.yaml",
        ] {
            assert!(!selection.wants(unwanted), "{unwanted}");
        }
    }
}
