//! A soa-configs directory on disk (PaaSTA's `/nail/etc/services`, a checkout).

use super::{FileSelection, ServiceFiles, Snapshot, SourceError};
use std::fs;
use std::path::Path;

/// Reads the selected files of every service folder under `root`.
///
/// Entries whose names start with `.` (`.git`) are not services. Plain files
/// at the top level are ignored, as PaaSTA finds no instances in them.
pub fn read_dir(root: &Path, selection: &FileSelection) -> Result<Snapshot, SourceError> {
    let display_root = root.display().to_string();
    let read_dir_error = |path: &Path, source| SourceError::ReadDirectory {
        path: path.display().to_string(),
        source,
    };
    let mut snapshot = Snapshot {
        root: display_root,
        revision: None,
        services: Default::default(),
    };
    for entry in fs::read_dir(root).map_err(|e| read_dir_error(root, e))? {
        let entry = entry.map_err(|e| read_dir_error(root, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let service_dir = entry.path();
        let mut files = ServiceFiles::default();
        read_selected(&service_dir, "", selection, &mut files)?;
        let autotuned = service_dir.join("autotuned_defaults");
        if autotuned.is_dir() {
            read_selected(&autotuned, "autotuned_defaults/", selection, &mut files)?;
        }
        snapshot.services.insert(name, files);
    }
    Ok(snapshot)
}

fn read_selected(
    dir: &Path,
    prefix: &str,
    selection: &FileSelection,
    files: &mut ServiceFiles,
) -> Result<(), SourceError> {
    let entries = fs::read_dir(dir).map_err(|source| SourceError::ReadDirectory {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::ReadDirectory {
            path: dir.display().to_string(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path_in_service = format!("{prefix}{name}");
        if !selection.wants(&path_in_service) || !entry.path().is_file() {
            continue;
        }
        let bytes = fs::read(entry.path()).map_err(|source| SourceError::ReadFile {
            path: entry.path().display().to_string(),
            source,
        })?;
        files.files.insert(path_in_service, bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_services_and_selected_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("svc/autotuned_defaults")).expect("mkdir");
        fs::create_dir_all(root.join(".git")).expect("mkdir");
        fs::create_dir_all(root.join("empty")).expect("mkdir");
        fs::write(root.join("README.md"), "x").expect("write");
        fs::write(root.join("svc/flink-c1.yaml"), "main: {}").expect("write");
        fs::write(root.join("svc/kubernetes-c1.yaml"), "main: {}").expect("write");
        fs::write(root.join("svc/autotuned_defaults/flink-c1.yaml"), "{}").expect("write");
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
        };
        let snapshot = read_dir(root, &selection).expect("snapshot");
        let services: Vec<&String> = snapshot.services.keys().collect();
        assert_eq!(services, ["empty", "svc"]);
        let files: Vec<&String> = snapshot.services["svc"].files.keys().collect();
        assert_eq!(files, ["autotuned_defaults/flink-c1.yaml", "flink-c1.yaml"]);
    }

    #[test]
    fn missing_directory_is_an_error_naming_it() {
        let selection = FileSelection {
            file_prefixes: vec![],
        };
        let err = read_dir(Path::new("/nonexistent/soa"), &selection).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/soa"), "{err}");
    }
}
