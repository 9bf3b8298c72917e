//! A soa-configs directory on disk (PaaSTA's `/nail/etc/services`, a checkout).

use super::{FileSelection, ServiceFiles, Snapshot, SourceError};
use crate::config::parallel::map_in_order;
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
    // Symlinks may point anywhere inside the root, never outside it.
    let canonical_root = fs::canonicalize(root).map_err(|e| read_dir_error(root, e))?;
    let mut services: Vec<(String, Result<PathBuf, String>)> = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| read_dir_error(root, e))? {
        let entry = entry.map_err(|e| read_dir_error(root, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        match resolve(&entry, &canonical_root) {
            Resolved::Dir => services.push((name, Ok(entry.path()))),
            Resolved::File | Resolved::Other => {}
            // A symlink that may have been a service folder: refusing it
            // keeps its instances from looking removed.
            Resolved::Refused(reason) => services.push((name, Err(reason))),
        }
    }
    // Reading is mostly system calls on a warm page cache: two or more
    // threads read disjoint service folders (see `config::parallel`).
    let reader = ServiceReader {
        canonical_root: &canonical_root,
        selection,
        cluster,
    };
    let results: Vec<ServiceFiles> =
        map_in_order(&services, SERVICES_PER_THREAD, |(_, dir)| match dir {
            Ok(dir) => reader.service(dir),
            Err(reason) => ServiceFiles::refused(reason.clone()),
        });
    let mut snapshot = Snapshot {
        root: root.display().to_string(),
        revision: None,
        services: Default::default(),
    };
    for ((name, _), files) in services.into_iter().zip(results) {
        snapshot.services.insert(name, files);
    }
    Ok(snapshot)
}

/// What a directory entry is, following symbolic links that stay inside the root.
enum Resolved {
    Dir,
    File,
    Other,
    Refused(String),
}

fn resolve(entry: &fs::DirEntry, canonical_root: &Path) -> Resolved {
    let kind = |metadata: &fs::Metadata| {
        if metadata.is_dir() {
            Resolved::Dir
        } else if metadata.is_file() {
            Resolved::File
        } else {
            Resolved::Other
        }
    };
    match entry.file_type() {
        Ok(file_type) if !file_type.is_symlink() => {
            if file_type.is_dir() {
                Resolved::Dir
            } else if file_type.is_file() {
                Resolved::File
            } else {
                Resolved::Other
            }
        }
        _ => match fs::canonicalize(entry.path()) {
            Err(error) => Resolved::Refused(format!("a symlink that does not resolve ({error})")),
            Ok(target) if !target.starts_with(canonical_root) => {
                Resolved::Refused("a symlink that resolves outside the soa-configs root".to_owned())
            }
            Ok(target) => match fs::metadata(&target) {
                Ok(metadata) => kind(&metadata),
                Err(error) => Resolved::Refused(format!("failed to read it ({error})")),
            },
        },
    }
}

struct ServiceReader<'a> {
    canonical_root: &'a Path,
    selection: &'a FileSelection,
    cluster: Option<&'a str>,
}

impl ServiceReader<'_> {
    /// The selected files of one service folder; what cannot be read safely
    /// is recorded as refused, which makes the service unknown.
    fn service(&self, service_dir: &Path) -> ServiceFiles {
        let mut files = ServiceFiles::default();
        if self.read_selected(service_dir, "", &mut files) {
            let autotuned = service_dir.join(AUTOTUNED_DEFAULTS);
            self.read_selected(&autotuned, &format!("{AUTOTUNED_DEFAULTS}/"), &mut files);
        }
        files
    }

    /// Reads the selected files of `dir`; returns whether it has an
    /// `autotuned_defaults` directory.
    fn read_selected(&self, dir: &Path, prefix: &str, files: &mut ServiceFiles) -> bool {
        let folder = prefix.trim_end_matches('/');
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                files.refuse(folder, format!("failed to list the folder ({error})"));
                return false;
            }
        };
        let mut has_autotuned = false;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    files.refuse(folder, format!("failed to list the folder ({error})"));
                    continue;
                }
            };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path_in_service = format!("{prefix}{name}");
            let autotuned_dir = prefix.is_empty() && name == AUTOTUNED_DEFAULTS;
            if !autotuned_dir && !self.selection.wants_for(&path_in_service, self.cluster) {
                continue;
            }
            match resolve(&entry, self.canonical_root) {
                Resolved::Dir if autotuned_dir => has_autotuned = true,
                Resolved::File if !autotuned_dir => {
                    match read_bounded(&entry.path(), self.selection.max_file_bytes) {
                        Ok(Bounded::Read(bytes)) => {
                            files.files.insert(path_in_service, bytes);
                        }
                        Ok(Bounded::TooLarge(size)) => {
                            files.refuse_size(path_in_service, size, self.selection.max_file_bytes);
                        }
                        Err(error) => {
                            files.refuse(path_in_service, format!("failed to read it ({error})"));
                        }
                    }
                }
                Resolved::Refused(reason) => files.refuse(path_in_service, reason),
                Resolved::Dir | Resolved::File | Resolved::Other => {}
            }
        }
        has_autotuned
    }
}

const AUTOTUNED_DEFAULTS: &str = "autotuned_defaults";

enum Bounded {
    Read(Vec<u8>),
    /// The size seen (at least `limit + 1`); nothing past it was read.
    TooLarge(u64),
}

/// Reads a file of at most `limit` bytes; a larger one (even one that grows
/// while it is read) is not read past the limit.
fn read_bounded(path: &Path, limit: usize) -> std::io::Result<Bounded> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let size = file.metadata()?.len();
    let limit_bytes = u64::try_from(limit).unwrap_or(u64::MAX);
    if size > limit_bytes {
        return Ok(Bounded::TooLarge(size));
    }
    let size = usize::try_from(size).unwrap_or(limit);
    // One read of one byte more than the size: getting exactly the size back
    // means the whole file was read, without the extra read that
    // `read_to_end` makes to see the end (a syscall per file adds up over
    // thousands of files). A file that changed size meanwhile is read to its
    // end, never past the limit.
    let mut bytes = vec![0; size + 1];
    let mut filled = 0;
    loop {
        let read = match file.read(&mut bytes[filled..]) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        filled += read;
        if read == 0 || filled == size {
            break;
        }
        if filled > limit {
            return Ok(Bounded::TooLarge(filled as u64));
        }
        if filled == bytes.len() {
            bytes.resize((filled * 2).min(limit + 1), 0);
        }
    }
    bytes.truncate(filled);
    Ok(Bounded::Read(bytes))
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
            ..FileSelection::default()
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
            ..FileSelection::default()
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

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused_not_skipped() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(outside.path().join("svc")).expect("mkdir");
        fs::write(outside.path().join("secret.yaml"), "main: {}").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("svc/autotuned_defaults")).expect("mkdir");
        fs::create_dir_all(root.join("other")).expect("mkdir");
        fs::write(root.join("svc/flink-c1.yaml"), "main: {}").expect("write");
        symlink(
            outside.path().join("secret.yaml"),
            root.join("svc/flink-c2.yaml"),
        )
        .expect("ln");
        symlink("../missing.yaml", root.join("svc/flink-c3.yaml")).expect("ln");
        symlink(
            outside.path(),
            root.join("svc/autotuned_defaults/flink-c1.yaml"),
        )
        .expect("ln");
        symlink(outside.path().join("svc"), root.join("escaped")).expect("ln");
        symlink(root.join("nowhere"), root.join("dangling")).expect("ln");
        // Inside the root, symlinks are followed; unread files are not checked.
        symlink(
            root.join("svc/flink-c1.yaml"),
            root.join("other/flink-c1.yaml"),
        )
        .expect("ln");
        symlink("/etc/passwd", root.join("other/NOTES")).expect("ln");
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
            ..FileSelection::default()
        };
        let snapshot = read_dir(root, &selection).expect("snapshot");
        let refused = |service: &str| -> Vec<(String, String)> {
            let mut refused: Vec<(String, String)> = snapshot.services[service]
                .refused
                .iter()
                .map(|r| (r.path.clone(), r.reason.clone()))
                .collect();
            refused.sort();
            refused
        };
        let outside_root = "a symlink that resolves outside the soa-configs root".to_owned();
        let svc = refused("svc");
        assert_eq!(svc.len(), 3, "{svc:?}");
        assert_eq!(
            svc[0],
            (
                "autotuned_defaults/flink-c1.yaml".to_owned(),
                outside_root.clone()
            )
        );
        assert_eq!(svc[1], ("flink-c2.yaml".to_owned(), outside_root.clone()));
        assert_eq!(svc[2].0, "flink-c3.yaml");
        assert!(
            svc[2].1.starts_with("a symlink that does not resolve"),
            "{svc:?}"
        );
        let files: Vec<&String> = snapshot.services["svc"].files.keys().collect();
        assert_eq!(files, ["flink-c1.yaml"], "refused targets are never read");
        assert_eq!(refused("escaped"), [(String::new(), outside_root)]);
        assert_eq!(refused("dangling").len(), 1);
        assert_eq!(refused("other"), []);
        assert!(
            snapshot.services["other"]
                .files
                .contains_key("flink-c1.yaml")
        );
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("svc")).expect("mkdir");
        fs::write(root.join("svc/flink-c1.yaml"), "main: {a: 1}\n").expect("write");
        fs::write(root.join("svc/flink-c2.yaml"), "x".repeat(100)).expect("write");
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
            max_file_bytes: 20,
        };
        let snapshot = read_dir(root, &selection).expect("snapshot");
        let svc = &snapshot.services["svc"];
        let files: Vec<&String> = svc.files.keys().collect();
        assert_eq!(files, ["flink-c1.yaml"]);
        assert_eq!(svc.refused.len(), 1);
        assert_eq!(svc.refused[0].path, "flink-c2.yaml");
        assert_eq!(
            svc.refused[0].reason,
            "the file is 100 bytes, over 20 bytes (limit max_document_bytes)"
        );
        // Exactly at the limit is fine.
        let exact = FileSelection {
            max_file_bytes: 100,
            ..selection
        };
        let snapshot = read_dir(root, &exact).expect("snapshot");
        assert!(snapshot.services["svc"].refused.is_empty());
    }

    #[test]
    fn files_are_read_whole_at_any_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        for size in [0, 1, 2, 4095, 4096, 4097, 100_000] {
            let path = dir.path().join(format!("f{size}"));
            let text: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            fs::write(&path, &text).expect("write");
            match read_bounded(&path, 100_000).expect("read") {
                Bounded::Read(bytes) => assert_eq!(bytes, text, "{size} bytes"),
                Bounded::TooLarge(n) => panic!("{size} bytes refused as {n}"),
            }
        }
    }

    /// Files whose size is unknown beforehand (procfs says 0) are read to
    /// their end, and still never past the limit.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_larger_than_its_stated_size_is_read_to_its_end_within_the_limit() {
        let path = Path::new("/proc/self/mountinfo");
        let Bounded::Read(bytes) = read_bounded(path, 1 << 20).expect("read") else {
            panic!("refused");
        };
        assert!(bytes.len() > 64, "{} bytes", bytes.len());
        assert!(bytes.ends_with(b"\n"));
        assert!(matches!(
            read_bounded(path, 16).expect("read"),
            Bounded::TooLarge(17)
        ));
    }

    #[test]
    fn missing_directory_is_an_error_naming_it() {
        let selection = FileSelection {
            file_prefixes: vec![],
            ..FileSelection::default()
        };
        let err = read_dir(Path::new("/nonexistent/soa"), &selection).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/soa"), "{err}");
    }
}
