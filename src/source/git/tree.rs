//! Reading commits: the selected files of a commit's tree as a
//! [`Snapshot`], and which services changed between two commits. Nothing is
//! checked out; blobs are read straight from the object database.

use super::GitError;
use crate::source::{FileSelection, ServiceFiles, Snapshot};
use git2::{Commit, ObjectType, Repository, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

const MODE_TREE: i32 = 0o040_000;
const MODE_SYMLINK: i32 = 0o120_000;
const MODE_GITLINK: i32 = 0o160_000;
const AUTOTUNED_DEFAULTS: &str = "autotuned_defaults";
const SHORT_SHA_LEN: usize = 12;

/// The top-level folders with a changed path between two commits.
pub(super) fn changed_services(
    repo: &Repository,
    previous: &Commit<'_>,
    commit: &Commit<'_>,
) -> Result<BTreeSet<String>, git2::Error> {
    let diff = repo.diff_tree_to_tree(Some(&previous.tree()?), Some(&commit.tree()?), None)?;
    let mut services = BTreeSet::new();
    for delta in diff.deltas() {
        for path in [delta.old_file().path(), delta.new_file().path()]
            .into_iter()
            .flatten()
        {
            if let Some(service) = service_of(path) {
                services.insert(service.to_owned());
            }
        }
        services.extend(linked_service_folder(&delta));
    }
    Ok(services)
}

/// Reads the selected files of every top-level service folder of `commit`
/// (only the folders in `only`, when given; the others are not listed).
pub(super) fn read_commit_snapshot(
    repo: &Repository,
    selection: &FileSelection,
    display_url: &str,
    commit: &Commit<'_>,
    only: Option<&BTreeSet<String>>,
) -> Result<Snapshot, git2::Error> {
    let revision = commit.id().to_string();
    let short = &revision[..SHORT_SHA_LEN.min(revision.len())];
    let mut services = BTreeMap::new();
    for entry in commit.tree()?.iter() {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            continue;
        };
        if name.starts_with('.') || only.is_some_and(|only| !only.contains(name)) {
            continue;
        }
        match entry.filemode() {
            MODE_TREE => {
                let tree = repo.find_tree(entry.id())?;
                let mut files = ServiceFiles::default();
                read_service_tree(repo, selection, &tree, "", &mut files)?;
                services.insert(name.to_owned(), files);
            }
            // Not followed, and not skipped either: a skipped folder would
            // look like a removed service and have its instances pruned.
            MODE_SYMLINK => {
                services.insert(
                    name.to_owned(),
                    ServiceFiles::refused("a symlinked service folder (symlinks are not followed)"),
                );
            }
            MODE_GITLINK => {
                services.insert(
                    name.to_owned(),
                    ServiceFiles::refused("a git submodule (submodules are not followed)"),
                );
            }
            _ => {}
        }
    }
    Ok(Snapshot {
        root: format!("{display_url}@{short}"),
        revision: Some(revision),
        services,
    })
}

/// Reads the selected blobs of a service folder (`prefix` empty) or of
/// its `autotuned_defaults` folder.
///
/// An entry the pipeline would read that is not what it expects is refused,
/// never skipped: a skipped instance file looks removed and gets pruned.
fn read_service_tree(
    repo: &Repository,
    selection: &FileSelection,
    tree: &Tree<'_>,
    prefix: &str,
    files: &mut ServiceFiles,
) -> Result<(), git2::Error> {
    for entry in tree.iter() {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            continue;
        };
        let path_in_service = format!("{prefix}{name}");
        let is_autotuned_dir = prefix.is_empty() && name == AUTOTUNED_DEFAULTS;
        if !is_autotuned_dir && !selection.wants(&path_in_service) {
            continue;
        }
        let mode = entry.filemode();
        let refusal = match (mode, entry.kind()) {
            (MODE_SYMLINK, _) => "a symlink (symlinks are not followed)".to_owned(),
            (MODE_GITLINK, _) => "a git submodule (submodules are not followed)".to_owned(),
            (_, Some(ObjectType::Tree)) if is_autotuned_dir => {
                let subtree = repo.find_tree(entry.id())?;
                let prefix = format!("{AUTOTUNED_DEFAULTS}/");
                read_service_tree(repo, selection, &subtree, &prefix, files)?;
                continue;
            }
            (_, Some(ObjectType::Tree)) => "a folder, not a file".to_owned(),
            (_, Some(ObjectType::Blob)) if is_autotuned_dir => "a file, not a folder".to_owned(),
            (_, Some(ObjectType::Blob)) => {
                // The header alone gives the size: a huge blob is never loaded.
                let (size, _) = repo.odb()?.read_header(entry.id())?;
                if size > selection.max_file_bytes {
                    let size = u64::try_from(size).unwrap_or(u64::MAX);
                    files.refuse_size(path_in_service, size, selection.max_file_bytes);
                } else {
                    let blob = repo.find_blob(entry.id())?;
                    files.files.insert(path_in_service, blob.content().to_vec());
                }
                continue;
            }
            _ => format!("not a file or a folder (git mode {mode:o})"),
        };
        files.refuse(path_in_service, refusal);
    }
    Ok(())
}

/// Opens a local repository (a work tree, or a bare one) to read revisions
/// from its object database; nothing is checked out or fetched.
fn open_local(repo_path: &Path) -> Result<Repository, GitError> {
    Repository::open(repo_path).map_err(|e| GitError::OpenRepository {
        path: repo_path.display().to_string(),
        reason: e.message().to_owned(),
    })
}

/// The commit `rev` names (a sha, a branch, `HEAD~1`, `origin/main`...).
fn resolve_commit<'r>(
    repo: &'r Repository,
    repo_path: &Path,
    rev: &str,
) -> Result<Commit<'r>, GitError> {
    repo.revparse_single(rev)
        .and_then(|object| object.peel_to_commit())
        .map_err(|e| GitError::UnknownRevision {
            path: repo_path.display().to_string(),
            revision: rev.to_owned(),
            reason: e.message().to_owned(),
        })
}

/// Reads the snapshot of revision `rev` of the local repository at
/// `repo_path`, straight from the object database (no checkout), with the
/// commit's full sha. With `only`, only those service folders are read.
/// The snapshot's `root` is `<repo_path>@<short sha>`.
pub fn snapshot_at(
    repo_path: &Path,
    rev: &str,
    selection: &FileSelection,
    only: Option<&BTreeSet<String>>,
) -> Result<(Snapshot, String), GitError> {
    let repo = open_local(repo_path)?;
    let commit = resolve_commit(&repo, repo_path, rev)?;
    let revision = commit.id().to_string();
    let display = repo_path.display().to_string();
    let snapshot =
        read_commit_snapshot(&repo, selection, &display, &commit, only).map_err(|e| {
            GitError::ReadCommit {
                url: display.clone(),
                revision: revision.clone(),
                reason: e.message().to_owned(),
            }
        })?;
    Ok((snapshot, revision))
}

/// The clusters that revision `rev` has an instance file for
/// (`<service>/<prefix>-<cluster>.yaml`), read from tree entry names only:
/// no file is read.
pub fn clusters_at(
    repo_path: &Path,
    rev: &str,
    file_prefixes: &[String],
) -> Result<BTreeSet<String>, GitError> {
    let repo = open_local(repo_path)?;
    let commit = resolve_commit(&repo, repo_path, rev)?;
    let read_error = |e: git2::Error| GitError::ReadCommit {
        url: repo_path.display().to_string(),
        revision: commit.id().to_string(),
        reason: e.message().to_owned(),
    };
    let tree = commit.tree().map_err(read_error)?;
    let selection = FileSelection {
        file_prefixes: file_prefixes.to_vec(),
        ..FileSelection::default()
    };
    let mut clusters = BTreeSet::new();
    for service in tree.iter() {
        if service.kind() != Some(git2::ObjectType::Tree) {
            continue;
        }
        let Ok(folder) = service.to_object(&repo).and_then(|o| o.peel_to_tree()) else {
            continue;
        };
        for entry in folder.iter() {
            if let Ok(name) = entry.name() {
                clusters.extend(selection.clusters_of(name).map(str::to_owned));
            }
        }
    }
    Ok(clusters)
}

/// The full sha of revision `rev` of the local repository at `repo_path`.
pub fn resolve_revision(repo_path: &Path, rev: &str) -> Result<String, GitError> {
    let repo = open_local(repo_path)?;
    Ok(resolve_commit(&repo, repo_path, rev)?.id().to_string())
}

/// The service folders with a changed file that `selection` reads (instance
/// files of the configured prefixes, `service.yaml`, `deployments.json`,
/// autotuned defaults) between revisions `base` and `head`. A rename counts
/// for both folders; a file the pipeline does not read changes nothing.
pub fn changed_services_between(
    repo_path: &Path,
    base: &str,
    head: &str,
    selection: &FileSelection,
) -> Result<BTreeSet<String>, GitError> {
    let repo = open_local(repo_path)?;
    let base_commit = resolve_commit(&repo, repo_path, base)?;
    let head_commit = resolve_commit(&repo, repo_path, head)?;
    let diff_error = |e: git2::Error| GitError::Diff {
        url: repo_path.display().to_string(),
        previous: base_commit.id().to_string(),
        revision: head_commit.id().to_string(),
        reason: e.message().to_owned(),
    };
    let diff = repo
        .diff_tree_to_tree(
            Some(&base_commit.tree().map_err(diff_error)?),
            Some(&head_commit.tree().map_err(diff_error)?),
            None,
        )
        .map_err(diff_error)?;
    let mut services = BTreeSet::new();
    for delta in diff.deltas() {
        for path in [delta.old_file().path(), delta.new_file().path()]
            .into_iter()
            .flatten()
        {
            let Some(service) = service_of(path) else {
                continue;
            };
            let Ok(in_service) = path.strip_prefix(service) else {
                continue;
            };
            if in_service.to_str().is_some_and(|p| selection.wants(p)) {
                services.insert(service.to_owned());
            }
        }
        services.extend(linked_service_folder(&delta));
    }
    Ok(services)
}

/// A top-level symlink or submodule that appeared, changed or went away:
/// it stands where a service folder would, and is refused as one.
fn linked_service_folder(delta: &git2::DiffDelta<'_>) -> Option<String> {
    [delta.old_file(), delta.new_file()]
        .iter()
        .find_map(|file| {
            let mode = i32::from(file.mode());
            let path = file.path()?;
            let linked = mode == MODE_SYMLINK || mode == MODE_GITLINK;
            let top_level = path.components().count() == 1;
            let name = path.to_str()?;
            (linked && top_level && !name.starts_with('.')).then(|| name.to_owned())
        })
}

/// The service a changed path belongs to: its first component, when the
/// path lies inside a top-level folder that is not hidden.
fn service_of(path: &Path) -> Option<&str> {
    let mut components = path.components();
    let Some(Component::Normal(first)) = components.next() else {
        return None;
    };
    components.next()?;
    let first = first.to_str()?;
    (!first.starts_with('.')).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_paths_map_to_services() {
        assert_eq!(service_of(Path::new("svc/flink-c1.yaml")), Some("svc"));
        assert_eq!(
            service_of(Path::new("svc/autotuned_defaults/flink-c1.yaml")),
            Some("svc")
        );
        assert_eq!(service_of(Path::new("README.md")), None);
        assert_eq!(service_of(Path::new(".github/workflows/ci.yaml")), None);
    }
}
