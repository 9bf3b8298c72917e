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
    let listing = DirListing::open(root, selection, cluster)?;
    let indices: Vec<usize> = (0..listing.len()).collect();
    let results: Vec<ServiceFiles> =
        map_in_order(&indices, SERVICES_PER_THREAD, |&index| listing.read(index));
    let mut snapshot = Snapshot {
        root: listing.root.clone(),
        revision: None,
        services: Default::default(),
    };
    for ((name, _), files) in listing.services.into_iter().zip(results) {
        snapshot.services.insert(name, files);
    }
    Ok(snapshot)
}

/// The service folders of a soa-configs directory, listed but not read yet:
/// each is read on its own with [`DirListing::read`], so that a caller can
/// process a service right after reading it (see [`crate::pipeline`]).
#[derive(Debug)]
pub struct DirListing {
    /// How paths are shown to users (the directory as given).
    root: String,
    canonical_root: PathBuf,
    selection: FileSelection,
    cluster: Option<String>,
    /// See [`ServiceReader::instance_files`].
    instance_files: Vec<String>,
    /// See [`ServiceReader::root_dir`].
    #[cfg(unix)]
    root_dir: rustix::fd::OwnedFd,
    /// Service names in order, with their folder or why it is refused.
    services: Vec<(String, Result<PathBuf, String>)>,
}

impl DirListing {
    /// Lists the service folders of `root`, to read the files `selection`
    /// wants for `cluster` (every cluster when `None`).
    pub fn open(
        root: &Path,
        selection: &FileSelection,
        cluster: Option<&str>,
    ) -> Result<Self, SourceError> {
        let read_dir_error = |path: &Path, source| SourceError::ReadDirectory {
            path: path.display().to_string(),
            source,
        };
        #[cfg(unix)]
        let root_dir = open_root(root).map_err(|e| read_dir_error(root, e))?;
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
                // Plain files at the top are notes (PaaSTA reads none); a
                // FIFO or a device is no note and may hide a service folder.
                Resolved::File => {}
                Resolved::Other(kind) => services.push((name, Err(not_a_folder(kind)))),
                Resolved::Refused(reason) => services.push((name, Err(reason))),
            }
        }
        services.sort_by(|a, b| a.0.cmp(&b.0));
        let mut instance_files: Vec<String> = cluster
            .map(|cluster| {
                selection
                    .file_prefixes
                    .iter()
                    .map(|prefix| format!("{prefix}-{cluster}.yaml"))
                    .filter(|name| selection.wants_for(name, Some(cluster)))
                    .collect()
            })
            .unwrap_or_default();
        instance_files.sort();
        instance_files.dedup();
        Ok(DirListing {
            root: root.display().to_string(),
            canonical_root,
            selection: selection.clone(),
            cluster: cluster.map(str::to_owned),
            instance_files,
            #[cfg(unix)]
            root_dir,
            services,
        })
    }

    /// How paths under this directory are shown to users.
    #[must_use]
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The number of service folders.
    #[must_use]
    pub fn len(&self) -> usize {
        self.services.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The service names, in sorted order (index `i` is service `i`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|(name, _)| name.as_str())
    }

    /// The name of the service at `index` (names are in sorted order).
    #[must_use]
    pub fn name(&self, index: usize) -> &str {
        &self.services[index].0
    }

    fn reader(&self) -> ServiceReader<'_> {
        ServiceReader {
            canonical_root: &self.canonical_root,
            selection: &self.selection,
            cluster: self.cluster.as_deref(),
            instance_files: &self.instance_files,
            #[cfg(unix)]
            root_dir: &self.root_dir,
        }
    }

    /// Reads the selected files of the service at `index`.
    #[must_use]
    pub fn read(&self, index: usize) -> ServiceFiles {
        let (name, dir) = &self.services[index];
        match dir {
            Ok(dir) => self.reader().service(dir, name),
            Err(reason) => ServiceFiles::refused(reason.clone()),
        }
    }
}

/// Opens the soa-configs root, which every file is then opened relative to.
#[cfg(unix)]
fn open_root(root: &Path) -> std::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(openat(CWD, root, directory, Mode::empty())?)
}

enum Resolved {
    Dir,
    File,
    /// Neither: what it is (`a FIFO`).
    Other(&'static str),
    Refused(String),
}

const OUTSIDE_ROOT: &str = "a symlink that resolves outside the soa-configs root";

/// What an entry is when checked; it may be something else by the time it
/// is opened, so what is read is checked again once open.
fn resolve(entry: &fs::DirEntry, canonical_root: &Path) -> Resolved {
    match entry.file_type() {
        Ok(file_type) if !file_type.is_symlink() => resolved(file_type),
        _ => match fs::canonicalize(entry.path()) {
            Err(error) => Resolved::Refused(format!("a symlink that does not resolve ({error})")),
            Ok(target) if !target.starts_with(canonical_root) => {
                Resolved::Refused(OUTSIDE_ROOT.to_owned())
            }
            Ok(target) => match fs::metadata(&target) {
                Ok(metadata) => resolved(metadata.file_type()),
                Err(error) => Resolved::Refused(format!("failed to read it ({error})")),
            },
        },
    }
}

fn resolved(file_type: fs::FileType) -> Resolved {
    if file_type.is_dir() {
        Resolved::Dir
    } else if file_type.is_file() {
        Resolved::File
    } else {
        Resolved::Other(kind(file_type))
    }
}

/// What an entry is, as reasons name it: `a FIFO`.
fn kind(file_type: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        } else if file_type.is_socket() {
            return "a socket";
        } else if file_type.is_char_device() {
            return "a character device";
        } else if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_file() {
        "a file"
    } else if file_type.is_symlink() {
        "a symlink"
    } else {
        "neither a file nor a folder"
    }
}

struct ServiceReader<'a> {
    canonical_root: &'a Path,
    selection: &'a FileSelection,
    cluster: Option<&'a str>,
    /// With a cluster, the names of the instance files it wants
    /// (`<prefix>-<cluster>.yaml`), in a service folder and in its
    /// `autotuned_defaults`.
    instance_files: &'a [String],
    /// The soa-configs root, open: every file is opened relative to it and
    /// checked never to leave it, so that a symlink swapped in after an
    /// entry was checked cannot make the reader read outside it.
    #[cfg(unix)]
    root_dir: &'a rustix::fd::OwnedFd,
}

/// Files read in every service folder, whatever the cluster.
const SERVICE_FILES: [&str; 2] = ["deployments.json", "service.yaml"];

impl ServiceReader<'_> {
    /// The selected files of one service folder; what cannot be read safely
    /// is recorded as refused, which makes the service unknown.
    /// `service_dir` is the root's folder `name`.
    fn service(&self, service_dir: &Path, name: &str) -> ServiceFiles {
        #[cfg(unix)]
        if self.cluster.is_some()
            && let Some(files) = self.service_by_name(name)
        {
            return files;
        }
        self.service_listed(service_dir, name)
    }

    /// [`Self::service`] by listing the folder and checking each entry.
    fn service_listed(&self, service_dir: &Path, name: &str) -> ServiceFiles {
        let service = Service {
            dir: service_dir,
            name,
        };
        let mut files = ServiceFiles::default();
        if self.read_selected(&service, "", &mut files) {
            self.read_selected(&service, AUTOTUNED_PREFIX, &mut files);
        }
        files
    }

    /// Reads the selected files of the service's folder `prefix` (empty, or
    /// ending in `/`); returns whether it has an `autotuned_defaults` folder.
    fn read_selected(&self, service: &Service, prefix: &str, files: &mut ServiceFiles) -> bool {
        let folder = prefix.trim_end_matches('/');
        let entries = match fs::read_dir(service.dir.join(folder)) {
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
            // Anything else under a wanted name is refused, not skipped: its
            // instances would look removed, and be pruned.
            match (resolve(&entry, self.canonical_root), autotuned_dir) {
                (Resolved::Dir, true) => has_autotuned = true,
                (Resolved::File, false) => self.read_listed(service, path_in_service, files),
                (Resolved::Refused(reason), _) => files.refuse(path_in_service, reason),
                (Resolved::Dir, false) => files.refuse(path_in_service, not_a_file("a folder")),
                (Resolved::File, true) => files.refuse(path_in_service, not_a_folder("a file")),
                (Resolved::Other(kind), false) => files.refuse(path_in_service, not_a_file(kind)),
                (Resolved::Other(kind), true) => files.refuse(path_in_service, not_a_folder(kind)),
            }
        }
        has_autotuned
    }

    /// Reads the file `path_in_service`, found a regular file when listed.
    fn read_listed(&self, service: &Service, path_in_service: String, files: &mut ServiceFiles) {
        let limit = self.selection.max_file_bytes;
        match self.open_listed(service, &path_in_service) {
            Ok(file) => file_read(
                files,
                path_in_service,
                read_bounded_file(file, limit),
                limit,
            ),
            Err(reason) => files.refuse(path_in_service, reason),
        }
    }

    #[cfg(not(unix))]
    fn open_listed(&self, service: &Service, path_in_service: &str) -> Result<fs::File, String> {
        fs::File::open(service.dir.join(path_in_service))
            .map_err(|error| format!("failed to read it ({error})"))
    }
}

/// A service folder being listed.
struct Service<'a> {
    /// The root's folder `name`.
    dir: &'a Path,
    #[cfg_attr(not(unix), allow(dead_code))]
    name: &'a str,
}

fn not_a_file(kind: &str) -> String {
    format!("{kind}, not a file")
}

fn not_a_folder(kind: &str) -> String {
    format!("{kind}, not a folder")
}

/// The reason for a file whose path resolved inside the root but held a
/// symlink once opened.
#[cfg(unix)]
const CHANGED: &str = "changed while it was read (a symlink was swapped in); read again next cycle";

/// Opening a listed file. An entry checked when listed may be replaced by a
/// symlink (or its service folder may) before it is opened, so it is opened
/// relative to the root and never through a symlink out of it.
#[cfg(unix)]
impl ServiceReader<'_> {
    fn open_listed(&self, service: &Service, path_in_service: &str) -> Result<fs::File, String> {
        use rustix::io::Errno;
        #[cfg(target_os = "linux")]
        match open_beneath(
            self.root_dir,
            &format!("{}/{path_in_service}", service.name),
        ) {
            Ok(fd) => return Ok(fd.into()),
            // An absolute symlink, or one out of the root: resolved below.
            Err(Errno::XDEV | Errno::LOOP | Errno::AGAIN | Errno::NOSYS | Errno::PERM) => {}
            Err(error) => return Err(failed(error)),
        }
        let canonical = fs::canonicalize(service.dir.join(path_in_service))
            .map_err(|error| format!("failed to read it ({error})"))?;
        let inside = canonical
            .strip_prefix(self.canonical_root)
            .map_err(|_| OUTSIDE_ROOT.to_owned())?;
        // A canonical path has no symlinks: one found now was swapped in.
        match open_without_symlinks(self.root_dir, inside, READ) {
            Ok(fd) => Ok(fd.into()),
            Err(Errno::LOOP | Errno::XDEV | Errno::AGAIN | Errno::NOTDIR) => {
                Err(CHANGED.to_owned())
            }
            Err(error) => Err(failed(error)),
        }
    }
}

#[cfg(unix)]
fn failed(error: rustix::io::Errno) -> String {
    format!("failed to read it ({})", std::io::Error::from(error))
}

/// How files are opened: never blocking, so that a FIFO under a wanted name
/// cannot hang the reader (what was opened is checked before it is read).
#[cfg(unix)]
const READ: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::NONBLOCK)
    .union(rustix::fs::OFlags::CLOEXEC)
    .union(rustix::fs::OFlags::NOCTTY);

/// Opens `path` relative to `dir`, following only symlinks that stay under
/// it (relative ones: an absolute symlink fails with `EXDEV`).
#[cfg(target_os = "linux")]
fn open_beneath(dir: &rustix::fd::OwnedFd, path: &str) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, ResolveFlags, openat2};
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    openat2(dir, path, READ, Mode::empty(), resolve)
}

/// Opens `path` relative to `dir` with `flags`, through no symlink at all
/// (`ELOOP` if there is one) and never out of `dir`.
#[cfg(target_os = "linux")]
fn open_no_symlinks(
    dir: &rustix::fd::OwnedFd,
    path: impl rustix::path::Arg,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, ResolveFlags, openat2};
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    openat2(dir, path, flags, Mode::empty(), resolve)
}

/// [`open_no_symlinks`], or where `openat2` is missing (older kernels, or
/// forbidden by a seccomp filter), the same one folder at a time.
#[cfg(unix)]
fn open_without_symlinks(
    dir: &rustix::fd::OwnedFd,
    path: &Path,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    #[cfg(target_os = "linux")]
    match open_no_symlinks(dir, path, flags) {
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
        opened => return opened,
    }
    open_by_walk(dir, path, flags)
}

/// Opens `path` (plain names only) relative to `dir` one component at a
/// time, none of them through a symlink.
#[cfg(unix)]
fn open_by_walk(
    dir: &rustix::fd::OwnedFd,
    path: &Path,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fd::AsFd;
    use rustix::fs::{Mode, OFlags, openat};
    use rustix::io::Errno;
    use std::path::Component;
    let folder = READ | OFlags::DIRECTORY | OFlags::NOFOLLOW;
    let mut components = path.components();
    let Some(Component::Normal(last)) = components.next_back() else {
        return Err(Errno::INVAL);
    };
    let mut parent: Option<rustix::fd::OwnedFd> = None;
    for component in components {
        let Component::Normal(name) = component else {
            return Err(Errno::INVAL);
        };
        let opened = openat(parent.as_ref().unwrap_or(dir), name, folder, Mode::empty())?;
        parent = Some(opened);
    }
    let parent = parent.as_ref().map_or(dir.as_fd(), AsFd::as_fd);
    openat(parent, last, flags | OFlags::NOFOLLOW, Mode::empty())
}

/// Reading a service folder for one cluster by the names of the files it
/// wants, without listing it: a listing costs five system calls per folder
/// (and as many again for `autotuned_defaults`), an absent file one failed
/// open. Each file is opened relative to the root (`<service>/<file>`: no
/// system calls to open and close the service folder) through no symlink at
/// all, not even a symlinked service folder, so that nothing swapped in can
/// lead out of the root; anything unusual (a symlink, an entry that cannot
/// be opened, a folder where nothing wanted was found, which may be one that
/// is gone) gives up, and the folder is listed and checked entry by entry as
/// before, so the result is always the listing's.
#[cfg(unix)]
impl ServiceReader<'_> {
    fn service_by_name(&self, name: &str) -> Option<ServiceFiles> {
        use rustix::fs::OFlags;
        use rustix::io::Errno;
        let root = self.root_dir;
        let mut files = ServiceFiles::default();
        let mut path = String::with_capacity(name.len() + 64);
        path.push_str(name);
        path.push('/');
        self.read_by_name(root, &mut path, "", &SERVICE_FILES, &mut files)?;
        self.read_by_name(root, &mut path, "", self.instance_files, &mut files)?;
        path.push_str(AUTOTUNED_DEFAULTS);
        match open_by_name(root, &path, READ | OFlags::DIRECTORY) {
            Ok(autotuned) => {
                let mut path = String::with_capacity(64);
                self.read_by_name(
                    &autotuned,
                    &mut path,
                    AUTOTUNED_PREFIX,
                    self.instance_files,
                    &mut files,
                )?;
            }
            Err(Errno::NOENT) => {}
            Err(_) => return None,
        }
        if files.files.is_empty() && files.refused.is_empty() {
            return None;
        }
        Some(files)
    }

    /// Reads the files `names` of the folder `dir_path` (empty, or ending in
    /// `/`) relative to `dir`; they are filed under `prefix` + name.
    fn read_by_name(
        &self,
        dir: &rustix::fd::OwnedFd,
        dir_path: &mut String,
        prefix: &str,
        names: &[impl AsRef<str>],
        files: &mut ServiceFiles,
    ) -> Option<()> {
        use rustix::io::Errno;
        let folder = dir_path.len();
        for name in names {
            let name = name.as_ref();
            dir_path.truncate(folder);
            dir_path.push_str(name);
            let file = match open_by_name(dir, dir_path, READ) {
                Ok(fd) => fs::File::from(fd),
                Err(Errno::NOENT) => continue,
                Err(_) => return None,
            };
            let limit = self.selection.max_file_bytes;
            let read = read_bounded_file(file, limit);
            file_read(files, format!("{prefix}{name}"), read, limit);
        }
        dir_path.truncate(folder);
        Some(())
    }
}

/// Opens `path` for [`ServiceReader::service_by_name`]: through no symlink.
/// Where `openat2` is missing it fails, and the folder is listed.
#[cfg(target_os = "linux")]
fn open_by_name(
    dir: &rustix::fd::OwnedFd,
    path: &str,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    open_no_symlinks(dir, path, flags)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn open_by_name(
    dir: &rustix::fd::OwnedFd,
    path: &str,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    open_by_walk(dir, Path::new(path), flags)
}

/// Files the outcome of reading `path_in_service` (at most `limit` bytes):
/// its bytes, or why it was refused.
fn file_read(
    files: &mut ServiceFiles,
    path_in_service: String,
    read: std::io::Result<Bounded>,
    limit: usize,
) {
    match read {
        Ok(Bounded::Read(bytes)) => {
            files.files.insert(path_in_service, bytes);
        }
        Ok(Bounded::TooLarge(size)) => files.refuse_size(path_in_service, size, limit),
        Ok(Bounded::NotAFile(kind)) => files.refuse(path_in_service, not_a_file(kind)),
        Err(error) => files.refuse(path_in_service, format!("failed to read it ({error})")),
    }
}

const AUTOTUNED_DEFAULTS: &str = "autotuned_defaults";
/// How paths inside `autotuned_defaults` start.
const AUTOTUNED_PREFIX: &str = "autotuned_defaults/";

#[derive(Debug)]
enum Bounded {
    Read(Vec<u8>),
    /// The size seen (at least `limit + 1`); nothing past it was read.
    TooLarge(u64),
    /// A folder, FIFO or device (what it is): not read.
    NotAFile(&'static str),
}

/// Reads an open file of at most `limit` bytes; a larger one (even one that
/// grows while it is read) is not read past the limit. What was opened is
/// checked here, as a file checked before may have been replaced since.
fn read_bounded_file(mut file: fs::File, limit: usize) -> std::io::Result<Bounded> {
    use std::io::Read;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(Bounded::NotAFile(kind(metadata.file_type())));
    }
    let size = metadata.len();
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
            let file = fs::File::open(&path).expect("open");
            match read_bounded_file(file, 100_000).expect("read") {
                Bounded::Read(bytes) => assert_eq!(bytes, text, "{size} bytes"),
                other => panic!("{size} bytes: {other:?}"),
            }
        }
    }

    /// Files whose size is unknown beforehand (procfs says 0) are read to
    /// their end, and still never past the limit.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_larger_than_its_stated_size_is_read_to_its_end_within_the_limit() {
        let path = Path::new("/proc/self/mountinfo");
        let read = |limit| read_bounded_file(fs::File::open(path).expect("open"), limit);
        let Bounded::Read(bytes) = read(1 << 20).expect("read") else {
            panic!("refused");
        };
        assert!(bytes.len() > 64, "{} bytes", bytes.len());
        assert!(bytes.ends_with(b"\n"));
        assert!(matches!(read(16).expect("read"), Bounded::TooLarge(17)));
    }

    /// Reads every service of `root` for `cluster` both ways; returns the
    /// services read by name (the others were listed).
    #[cfg(unix)]
    fn by_name_matches_listing(root: &Path, cluster: &str, max_file_bytes: usize) -> Vec<String> {
        let selection = FileSelection {
            file_prefixes: vec!["flink".into(), "flinkeks".into()],
            max_file_bytes,
        };
        let listing = DirListing::open(root, &selection, Some(cluster)).expect("list");
        let reader = listing.reader();
        let mut by_name = Vec::new();
        for (name, dir) in &listing.services {
            let Ok(dir) = dir else { continue };
            let listed = reader.service_listed(dir, name);
            if let Some(files) = reader.service_by_name(name) {
                assert_eq!(files, listed, "{name} for {cluster}");
                by_name.push(name.clone());
            }
            assert_eq!(reader.service(dir, name), listed, "{name} for {cluster}");
        }
        by_name
    }

    #[cfg(unix)]
    #[test]
    fn reading_by_name_gives_the_listings_result_or_gives_up() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("x.yaml"), "main: {}").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        };
        for file in [
            "plain/flink-c1.yaml",
            "plain/flinkeks-c1.yaml",
            "plain/flink-c2.yaml",
            "plain/deployments.json",
            "plain/service.yaml",
            "plain/README.md",
            "plain/autotuned_defaults/flink-c1.yaml",
            "plain/autotuned_defaults/flink-c2.yaml",
            "plain/autotuned_defaults/service.yaml",
            "no_autotuned/flink-c1.yaml",
            "autotuned_is_a_file/flink-c1.yaml",
            "autotuned_is_a_file/autotuned_defaults",
            "shared/autotuned/flink-c1.yaml",
            "autotuned_linked/flink-c1.yaml",
            "linked_in/flink-c2.yaml",
            "linked_out/service.yaml",
        ] {
            write(file, "main: {}\n");
        }
        write("too_large/flink-c1.yaml", &"x".repeat(64));
        fs::create_dir_all(root.join("empty")).expect("mkdir");
        fs::create_dir_all(root.join("dir_named_like_a_file/flink-c1.yaml")).expect("mkdir");
        fs::create_dir_all(root.join("socket_named_like_a_file")).expect("mkdir");
        let _socket = std::os::unix::net::UnixListener::bind(
            root.join("socket_named_like_a_file/flink-c1.yaml"),
        )
        .expect("bind");
        symlink(
            root.join("shared/autotuned"),
            root.join("autotuned_linked/autotuned_defaults"),
        )
        .expect("ln");
        // A service folder that is a symlink inside the root is read through it.
        symlink(root.join("plain"), root.join("plain_linked")).expect("ln");
        symlink(
            root.join("linked_in/flink-c2.yaml"),
            root.join("linked_in/flink-c1.yaml"),
        )
        .expect("ln");
        symlink(
            outside.path().join("x.yaml"),
            root.join("linked_out/flink-c1.yaml"),
        )
        .expect("ln");
        // Symlinks (a symlinked service folder too), a file where
        // `autotuned_defaults` should be, a socket (which cannot be opened)
        // and folders with none of the wanted files are left to the listing.
        // A folder under a wanted name is opened, and refused by both.
        let by_name = by_name_matches_listing(root, "c1", 32);
        assert_eq!(
            by_name,
            [
                "dir_named_like_a_file",
                "no_autotuned",
                "plain",
                "too_large"
            ]
        );
        let plain = read_dir_for_cluster(
            root,
            &FileSelection {
                file_prefixes: vec!["flink".into(), "flinkeks".into()],
                max_file_bytes: 32,
            },
            "c1",
        )
        .expect("read");
        let files: Vec<&String> = plain.services["plain"].files.keys().collect();
        assert_eq!(
            files,
            [
                "autotuned_defaults/flink-c1.yaml",
                "deployments.json",
                "flink-c1.yaml",
                "flinkeks-c1.yaml",
                "service.yaml"
            ]
        );
        assert_eq!(plain.services["too_large"].refused.len(), 1);
        assert_eq!(plain.services["linked_out"].refused.len(), 1);
        assert!(plain.services["autotuned_linked"].files.len() == 2);
        assert_eq!(plain.services["plain_linked"], plain.services["plain"]);
        let refusal = |service: &str| {
            let refused = &plain.services[service].refused;
            assert_eq!(refused.len(), 1, "{service}: {refused:?}");
            (refused[0].path.as_str(), refused[0].reason.as_str())
        };
        assert_eq!(
            refusal("dir_named_like_a_file"),
            ("flink-c1.yaml", "a folder, not a file")
        );
        assert_eq!(
            refusal("socket_named_like_a_file"),
            ("flink-c1.yaml", "a socket, not a file")
        );
        assert_eq!(
            refusal("autotuned_is_a_file"),
            ("autotuned_defaults", "a file, not a folder")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_cluster_name_with_a_slash_never_reads_outside_the_service_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("svc/flink-x")).expect("mkdir");
        fs::write(root.join("svc/flink-x/y.yaml"), "main: {}").expect("write");
        fs::write(root.join("svc/flink-c1.yaml"), "main: {}").expect("write");
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
            ..FileSelection::default()
        };
        // `wants_for` takes no name with a `/`, so none is opened.
        let listing = DirListing::open(root, &selection, Some("x/y")).expect("list");
        assert!(listing.instance_files.is_empty());
        let files = listing.read(0);
        assert!(files.files.is_empty(), "{:?}", files.files.keys());
        let plain = DirListing::open(root, &selection, Some("c1")).expect("list");
        assert_eq!(plain.read(0).files.len(), 1);
    }

    /// A folder that disappears between the listing and the read is not a
    /// service without files (whose instances would look removed): its
    /// service is refused, which makes it unknown.
    /// A FIFO where a service folder was is refused (its service unknown),
    /// never skipped as a note would be, and never opened.
    #[cfg(unix)]
    #[test]
    fn a_fifo_at_the_top_is_a_refused_service() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("README"), "notes").expect("write");
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("svc"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
            ..FileSelection::default()
        };
        let snapshot = read_dir(root, &selection).expect("snapshot");
        let names: Vec<&String> = snapshot.services.keys().collect();
        assert_eq!(names, ["svc"], "README is a note, svc is not");
        assert_eq!(
            snapshot.services["svc"].refused[0].reason,
            "a FIFO, not a folder"
        );
    }

    #[test]
    fn a_service_folder_gone_after_the_listing_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for service in ["gone", "kept"] {
            fs::create_dir_all(root.join(service)).expect("mkdir");
            fs::write(root.join(service).join("flink-c1.yaml"), "main: {}").expect("write");
        }
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
            ..FileSelection::default()
        };
        let listing = DirListing::open(root, &selection, Some("c1")).expect("list");
        fs::remove_dir_all(root.join("gone")).expect("rm");
        let gone = listing.read(0);
        assert!(gone.files.is_empty());
        assert_eq!(gone.refused.len(), 1, "{gone:?}");
        assert_eq!(listing.read(1).files.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_fixtures_read_by_name_as_listed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/soa-configs");
        for cluster in ["pnw-prod", "norcal-devc"] {
            let by_name = by_name_matches_listing(&root, cluster, 1 << 20);
            assert!(by_name.len() > 10, "{cluster}: {by_name:?}");
        }
    }

    /// Reads `root` every way in a thread: all clusters, `c1` (by name, and
    /// checked against the listing); fails if that blocks.
    #[cfg(unix)]
    fn read_without_blocking(root: &Path) -> [Snapshot; 2] {
        use std::time::Duration;
        let (sender, receiver) = std::sync::mpsc::channel();
        let root = root.to_owned();
        std::thread::spawn(move || {
            let selection = FileSelection {
                file_prefixes: vec!["flink".into()],
                ..FileSelection::default()
            };
            let all = read_dir(&root, &selection).expect("read");
            let c1 = read_dir_for_cluster(&root, &selection, "c1").expect("read");
            by_name_matches_listing(&root, "c1", 1 << 20);
            let _ = sender.send([all, c1]);
        });
        receiver
            .recv_timeout(Duration::from_secs(5))
            .expect("the read blocked")
    }

    /// A service whose instances cannot be read must not look as if it had
    /// none, or they would be pruned: anything but a file under a wanted
    /// name (a folder, a FIFO, a socket) is refused, which makes the service
    /// unknown, and nothing is opened in a way that could block.
    #[cfg(unix)]
    #[test]
    fn what_is_not_a_file_under_a_wanted_name_is_refused_without_blocking() {
        use rustix::fs::{CWD, Mode, mkfifoat};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let cases = [
            ("folder_instance", "flink-c1.yaml", "a folder, not a file"),
            ("fifo_instance", "flink-c1.yaml", "a FIFO, not a file"),
            ("socket_instance", "flink-c1.yaml", "a socket, not a file"),
            (
                "folder_deployments",
                "deployments.json",
                "a folder, not a file",
            ),
            ("fifo_service", "service.yaml", "a FIFO, not a file"),
            (
                "folder_autotuned_instance",
                "autotuned_defaults/flink-c1.yaml",
                "a folder, not a file",
            ),
            (
                "fifo_autotuned_instance",
                "autotuned_defaults/flink-c1.yaml",
                "a FIFO, not a file",
            ),
            (
                "file_autotuned",
                "autotuned_defaults",
                "a file, not a folder",
            ),
            (
                "fifo_autotuned",
                "autotuned_defaults",
                "a FIFO, not a folder",
            ),
            ("linked_fifo", "flink-c1.yaml", "a FIFO, not a file"),
        ];
        let mut sockets = Vec::new();
        for (service, path, reason) in cases {
            let path = root.join(service).join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            if service == "linked_fifo" {
                std::os::unix::fs::symlink("../fifo_instance/flink-c1.yaml", &path).expect("ln");
            } else if reason.starts_with("a folder") {
                fs::create_dir(&path).expect("mkdir");
            } else if reason.starts_with("a FIFO") {
                mkfifoat(CWD, &path, Mode::from_raw_mode(0o644)).expect("mkfifo");
            } else if reason.starts_with("a socket") {
                sockets.push(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
            } else {
                fs::write(&path, "{}\n").expect("write");
            }
        }
        fs::create_dir_all(root.join("good/autotuned_defaults")).expect("mkdir");
        for file in [
            "flink-c1.yaml",
            "service.yaml",
            "autotuned_defaults/flink-c1.yaml",
        ] {
            fs::write(root.join("good").join(file), "main: {}\n").expect("write");
        }
        for snapshot in read_without_blocking(root) {
            for (service, path, reason) in cases {
                let refused = &snapshot.services[service].refused;
                assert_eq!(refused.len(), 1, "{service}: {refused:?}");
                assert_eq!(
                    (refused[0].path.as_str(), refused[0].reason.as_str()),
                    (path, reason),
                    "{service}"
                );
            }
            let good = &snapshot.services["good"];
            assert!(good.refused.is_empty(), "{good:?}");
            assert_eq!(good.files.len(), 3, "{good:?}");
        }
    }

    /// Reads `root` (every cluster, then `c1`) over and over while `swap`
    /// runs in a thread; returns how many reads had bytes from outside it.
    /// Every file inside holds `main: {}\n`: a read has it or is refused.
    #[cfg(unix)]
    fn reads_of_outside_bytes_while(root: &Path, swap: impl Fn() + Sync) -> usize {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let selection = FileSelection {
            file_prefixes: vec!["flink".into()],
            ..FileSelection::default()
        };
        let stop = AtomicBool::new(false);
        let (mut bad, mut inside) = (0, 0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    swap();
                }
            });
            let deadline = Instant::now() + Duration::from_millis(1200);
            while Instant::now() < deadline {
                for snapshot in [
                    read_dir(root, &selection).expect("read"),
                    read_dir_for_cluster(root, &selection, "c1").expect("read"),
                ] {
                    let bytes = snapshot.services.values().flat_map(|s| s.files.values());
                    for bytes in bytes {
                        if bytes != b"main: {}\n" {
                            bad += 1;
                        } else {
                            inside += 1;
                        }
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(inside > 0, "the reads never saw the file inside the root");
        bad
    }

    #[cfg(unix)]
    #[test]
    fn a_file_swapped_for_a_symlink_out_of_the_root_is_never_read() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("secret.yaml");
        fs::write(&secret, "SECRET: outside\n").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let svc = dir.path().join("svc");
        fs::create_dir_all(&svc).expect("mkdir");
        // Many files read between the listing and the swapped ones' opening
        // widen the window a swap must hit.
        for cluster in 0..100 {
            fs::write(svc.join(format!("flink-c{cluster}.yaml")), "main: {}\n").expect("write");
        }
        let swapped: Vec<String> = (1..100)
            .step_by(5)
            .map(|cluster| format!("flink-c{cluster}.yaml"))
            .collect();
        // Absolute symlinks and relative ones (`../../<outside>/secret.yaml`).
        let outside_name = outside.path().file_name().expect("name");
        let relative = Path::new("../..").join(outside_name).join("secret.yaml");
        assert_eq!(
            fs::canonicalize(svc.join(&relative)).ok(),
            fs::canonicalize(&secret).ok(),
            "both temporary folders are in the same folder"
        );
        let swap = || {
            for (index, name) in swapped.iter().enumerate() {
                let link = svc.join(format!(".{name}"));
                let _ = fs::remove_file(&link);
                let target = if index % 2 == 0 { &secret } else { &relative };
                symlink(target, &link).expect("ln");
                fs::rename(&link, svc.join(name)).expect("mv");
            }
            for name in &swapped {
                let file = svc.join(format!(".{name}"));
                fs::write(&file, "main: {}\n").expect("write");
                fs::rename(&file, svc.join(name)).expect("mv");
            }
        };
        let bad = reads_of_outside_bytes_while(dir.path(), swap);
        assert_eq!(bad, 0, "{bad} reads had bytes from outside the root");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_service_folder_swapped_for_a_symlink_out_of_the_root_is_never_read() {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        let outside = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(outside.path().join("svc")).expect("mkdir");
        fs::write(
            outside.path().join("svc/flink-c1.yaml"),
            "SECRET: outside\n",
        )
        .expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("svc")).expect("mkdir");
        fs::write(root.join("svc/flink-c1.yaml"), "main: {}\n").expect("write");
        std::os::unix::fs::symlink(outside.path().join("svc"), root.join(".svc")).expect("ln");
        // An exchange, so that `svc` is always there: a folder or a symlink.
        let swap = || {
            renameat_with(
                CWD,
                root.join(".svc"),
                CWD,
                root.join("svc"),
                RenameFlags::EXCHANGE,
            )
            .expect("exchange");
        };
        let bad = reads_of_outside_bytes_while(root, swap);
        assert_eq!(bad, 0, "{bad} reads had bytes from outside the root");
    }

    /// Where `openat2` is missing, files are opened one folder at a time,
    /// through no symlink either.
    #[cfg(unix)]
    #[test]
    fn opening_folder_by_folder_goes_through_no_symlink() {
        use rustix::io::Errno;
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("svc/autotuned_defaults")).expect("mkdir");
        fs::write(root.join("svc/autotuned_defaults/flink-c1.yaml"), "a: 1\n").expect("write");
        symlink("svc", root.join("linked")).expect("ln");
        symlink(
            "autotuned_defaults/flink-c1.yaml",
            root.join("svc/flink-c1.yaml"),
        )
        .expect("ln");
        let root_dir = open_root(root).expect("open");
        let open = |path: &str| open_by_walk(&root_dir, Path::new(path), READ);
        let file = open("svc/autotuned_defaults/flink-c1.yaml").expect("open");
        let read = read_bounded_file(file.into(), 64).expect("read");
        assert!(matches!(read, Bounded::Read(bytes) if bytes == b"a: 1\n"));
        for through_a_symlink in [
            "linked/autotuned_defaults/flink-c1.yaml",
            "svc/flink-c1.yaml",
        ] {
            let error = open(through_a_symlink).expect_err(through_a_symlink);
            assert!(
                matches!(error, Errno::LOOP | Errno::NOTDIR),
                "{through_a_symlink}: {error}"
            );
        }
        for not_plain in ["svc/../svc/flink-c1.yaml", "/etc/passwd", ""] {
            assert_eq!(open(not_plain).expect_err(not_plain), Errno::INVAL);
        }
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
