//! Keeps the cache to a bounded number of packs.
//!
//! Every fetch that brings objects writes one pack, and libgit2 keeps a
//! descriptor open on each pack it has read from (its open-file limit is a
//! process global behind an `unsafe fn`, which this crate forbids). Past
//! [`MAX_PACKS`] the objects still reachable from the refs the source keeps
//! are written into one new pack in the same repository and the older packs
//! removed, as `git repack -a -d` would. Doing it in place keeps
//! `refs/flink-gitops/accepted/<branch>` where it is: a crash half-way
//! leaves either extra packs or the complete new one, never a cache without
//! the accepted commit.

use git2::Repository;
use std::path::{Path, PathBuf};

/// Past this many packs in the cache, it is compacted into one.
pub const MAX_PACKS: usize = 32;

/// Why the cache could not be compacted. The packs it had stay usable.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("failed to list the packs in {path}")]
    ListPacks {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write a pack of {refs:?} into {path}")]
    WritePack {
        path: PathBuf,
        refs: Vec<String>,
        #[source]
        source: git2::Error,
    },
    #[error("failed to remove the pack {path}")]
    RemovePack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn pack_dir(repo: &Repository) -> PathBuf {
    repo.path().join("objects").join("pack")
}

/// The packs of `repo`, by path without extension.
fn packs(dir: &Path) -> Result<Vec<PathBuf>, CompactError> {
    let list_error = |source| CompactError::ListPacks {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(list_error(e)),
    };
    let mut packs = Vec::new();
    for entry in entries {
        let path = entry.map_err(list_error)?.path();
        if path.extension().is_some_and(|ext| ext == "pack") {
            packs.push(path.with_extension(""));
        }
    }
    Ok(packs)
}

/// Compacts the cache when it holds more than [`MAX_PACKS`] packs, keeping
/// what `refs` reach (the missing ones are skipped). Returns whether it did:
/// the caller then reopens its handles, which still hold the removed packs.
pub(super) fn compact_if_needed(repo: &Repository, refs: &[&str]) -> Result<bool, CompactError> {
    let dir = pack_dir(repo);
    let before = packs(&dir)?;
    if before.len() <= MAX_PACKS {
        return Ok(false);
    }
    let write_error = |source| CompactError::WritePack {
        path: dir.clone(),
        refs: refs.iter().map(|r| (*r).to_owned()).collect(),
        source,
    };
    let mut walk = repo.revwalk().map_err(write_error)?;
    for name in refs {
        if let Ok(id) = repo.refname_to_id(name) {
            walk.push(id).map_err(write_error)?;
        }
    }
    let mut builder = repo.packbuilder().map_err(write_error)?;
    builder.insert_walk(&mut walk).map_err(write_error)?;
    builder.write(&dir, 0).map_err(write_error)?;
    // Without the new pack's name, an old one it replaced under the same
    // name could be removed: keep everything rather.
    let Some(written) = builder
        .name()
        .ok()
        .flatten()
        .map(|hash| format!("pack-{hash}"))
    else {
        return Ok(false);
    };
    for pack in before {
        let name = pack
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if written == name {
            continue;
        }
        // The index first: a pack without one is no longer looked at.
        for ext in ["idx", "pack", "rev", "mtimes", "keep", "promisor"] {
            let path = pack.with_extension(ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(CompactError::RemovePack { path, source }),
            }
        }
    }
    Ok(true)
}
