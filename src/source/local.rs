//! A soa-configs directory on disk (PaaSTA's `/nail/etc/services`, a checkout).

use super::{FileSelection, ServiceFiles, Snapshot, SourceError};
use std::fs;
use std::path::{Path, PathBuf};

/// Reads the selected files of every service folder under `root`.
///
/// Entries whose names start with `.` (`.git`) are not services. Plain files
/// at the top level are ignored, as PaaSTA finds no instances in them.
pub fn read_dir(root: &Path, selection: &FileSelection) -> Result<Snapshot, SourceError> {
    read(root, selection, None)
}

/// Like [`read_dir`], but reads only `cluster`'s instance files (plus every
/// service's `service.yaml` and `deployments.json`): what rendering one
/// cluster needs. Every service folder is still listed.
pub fn read_dir_for_cluster(
    root: &Path,
    selection: &FileSelection,
    cluster: &str,
) -> Result<Snapshot, SourceError> {
    read(root, selection, Some(cluster))
}

/// Fewer service folders than this per thread are not worth a thread.
const SERVICES_PER_THREAD: usize = 64;

fn read(
    root: &Path,
    selection: &FileSelection,
    cluster: Option<&str>,
) -> Result<Snapshot, SourceError> {
    let read_dir_error = |path: &Path, source| SourceError::ReadDirectory {
        path: path.display().to_string(),
        source,
    };
    let mut services: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| read_dir_error(root, e))? {
        let entry = entry.map_err(|e| read_dir_error(root, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !is_dir(&entry) {
            continue;
        }
        services.push((name, entry.path()));
    }
    // Reading is mostly system calls on a warm page cache: two or more
    // threads read disjoint service folders; the first error (in folder
    // order) wins, as in a sequential read.
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(services.len() / SERVICES_PER_THREAD)
        .max(1);
    let chunk = services.len().div_ceil(threads).max(1);
    let read_part = |part: &[(String, PathBuf)]| -> Vec<Result<ServiceFiles, SourceError>> {
        part.iter()
            .map(|(_, dir)| read_service(dir, selection, cluster))
            .collect()
    };
    let results: Vec<Result<ServiceFiles, SourceError>> = if threads == 1 {
        read_part(&services)
    } else {
        std::thread::scope(|scope| {
            let read_part = &read_part;
            let (first, rest) = services.split_at(chunk.min(services.len()));
            let workers: Vec<_> = rest
                .chunks(chunk)
                .map(|part| scope.spawn(move || read_part(part)))
                .collect();
            let mut results = read_part(first);
            for worker in workers {
                match worker.join() {
                    Ok(part) => results.extend(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            results
        })
    };
    let mut snapshot = Snapshot {
        root: root.display().to_string(),
        revision: None,
        services: Default::default(),
    };
    for ((name, _), files) in services.into_iter().zip(results) {
        snapshot.services.insert(name, files?);
    }
    Ok(snapshot)
}

/// Whether a directory entry is a directory, following symbolic links like
/// `Path::is_dir` but without a `stat` when the entry type says it all.
fn is_dir(entry: &fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(kind) if kind.is_symlink() => entry.path().is_dir(),
        Ok(kind) => kind.is_dir(),
        Err(_) => entry.path().is_dir(),
    }
}

/// Like [`is_dir`], for files.
fn is_file(entry: &fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(kind) if kind.is_symlink() => entry.path().is_file(),
        Ok(kind) => kind.is_file(),
        Err(_) => entry.path().is_file(),
    }
}

fn read_service(
    service_dir: &Path,
    selection: &FileSelection,
    cluster: Option<&str>,
) -> Result<ServiceFiles, SourceError> {
    let mut files = ServiceFiles::default();
    let has_autotuned = read_selected(service_dir, "", selection, cluster, &mut files)?;
    if has_autotuned {
        let autotuned = service_dir.join("autotuned_defaults");
        read_selected(
            &autotuned,
            "autotuned_defaults/",
            selection,
            cluster,
            &mut files,
        )?;
    }
    Ok(files)
}

/// Reads the selected files of `dir`; returns whether it has an
/// `autotuned_defaults` directory.
fn read_selected(
    dir: &Path,
    prefix: &str,
    selection: &FileSelection,
    cluster: Option<&str>,
    files: &mut ServiceFiles,
) -> Result<bool, SourceError> {
    let entries = fs::read_dir(dir).map_err(|source| SourceError::ReadDirectory {
        path: dir.display().to_string(),
        source,
    })?;
    let mut has_autotuned = false;
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::ReadDirectory {
            path: dir.display().to_string(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if prefix.is_empty() && name == "autotuned_defaults" {
            has_autotuned = is_dir(&entry);
            continue;
        }
        let path_in_service = format!("{prefix}{name}");
        if !selection.wants_for(&path_in_service, cluster) || !is_file(&entry) {
            continue;
        }
        let bytes = fs::read(entry.path()).map_err(|source| SourceError::ReadFile {
            path: entry.path().display().to_string(),
            source,
        })?;
        files.files.insert(path_in_service, bytes);
    }
    Ok(has_autotuned)
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
    fn a_cluster_filter_reads_only_that_cluster_and_follows_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("real/autotuned_defaults")).expect("mkdir");
        fs::write(root.join("real/flink-c1.yaml"), "main: {}").expect("write");
        fs::write(root.join("real/flink-c2.yaml"), "main: {}").expect("write");
        fs::write(root.join("real/service.yaml"), "{}").expect("write");
        fs::write(root.join("real/autotuned_defaults/flink-c1.yaml"), "{}").expect("write");
        fs::write(root.join("real/autotuned_defaults/flink-c2.yaml"), "{}").expect("write");
        fs::write(root.join("shared.yaml"), "a: {}").expect("write");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("real"), root.join("linked")).expect("symlink");
            std::os::unix::fs::symlink(root.join("shared.yaml"), root.join("real/flink-c3.yaml"))
                .expect("symlink");
        }
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
        };
        let snapshot = read_dir_for_cluster(root, &selection, "c1").expect("snapshot");
        let files: Vec<&String> = snapshot.services["real"].files.keys().collect();
        assert_eq!(
            files,
            [
                "autotuned_defaults/flink-c1.yaml",
                "flink-c1.yaml",
                "service.yaml"
            ]
        );
        let all = read_dir(root, &selection).expect("snapshot");
        #[cfg(unix)]
        {
            assert_eq!(all.services["linked"], all.services["real"]);
            assert!(all.services["real"].files.contains_key("flink-c3.yaml"));
        }
        assert_eq!(
            all.services["real"].files.len(),
            5 + usize::from(cfg!(unix))
        );
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
