//! A one-shot render of a soa-configs directory, the stages chained per
//! service.
//!
//! `flink-gitops render` could read the whole tree, then load it, then render
//! it ([`crate::source::read_dir_for_cluster`], [`config::load`],
//! [`render::render_owned`]). Here each worker thread reads one service's
//! files, loads and renders them, and frees the files and the loaded
//! configuration before it takes the next service: the data is still in the
//! core's cache when the next stage needs it, it is freed by the thread that
//! allocated it, and only the rendered resources stay in memory. The result is
//! the same as the staged path's (tested below).

use crate::config::parallel::map_in_order;
use crate::config::{self, Settings};
use crate::render::{self, DesiredSet};
use crate::source::DirListing;

/// Fewer services than this per thread are not worth a thread (each one
/// is read, loaded and rendered, so fewer than elsewhere).
const SERVICES_PER_THREAD: usize = 16;

/// Renders `cluster` from every service of `listing` (or only
/// `only_service`, only `only_instance`).
#[must_use]
pub fn render_listing(
    listing: &DirListing,
    settings: &Settings,
    cluster: &str,
    only_service: Option<&str>,
    only_instance: Option<&str>,
) -> DesiredSet {
    let selected: Vec<usize> = listing
        .names()
        .enumerate()
        .filter(|(_, name)| only_service.is_none_or(|only| only == *name))
        .map(|(index, _)| index)
        .collect();
    let rendered = map_in_order(&selected, SERVICES_PER_THREAD, |&index| {
        let name = listing.name(index);
        let files = listing.read(index);
        let state = config::load_service(listing.root(), name, &files, settings, cluster);
        drop(files);
        let rendered = render::render_service(state, cluster, settings, only_instance);
        (name.to_owned(), rendered)
    });
    render::assemble(cluster.to_owned(), rendered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::read_dir_for_cluster;
    use std::path::Path;

    fn settings() -> Settings {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/flink-gitops.yaml");
        let text = std::fs::read_to_string(&path).expect("read the settings");
        Settings::parse(&text, "flink-gitops.yaml").expect("valid settings")
    }

    /// The desired set rendered per service, then stage by stage.
    fn both_ways(
        root: &Path,
        settings: &Settings,
        cluster: &str,
        only_service: Option<&str>,
        only_instance: Option<&str>,
    ) -> (DesiredSet, DesiredSet) {
        let selection = settings.file_selection();
        let listing = DirListing::open(root, &selection, Some(cluster)).expect("list");
        let per_service = render_listing(&listing, settings, cluster, only_service, only_instance);
        let snapshot = read_dir_for_cluster(root, &selection, cluster).expect("read");
        let config_set = config::load(&snapshot, settings, cluster, only_service);
        let staged = render::render_owned(config_set, settings, only_instance);
        (per_service, staged)
    }

    #[test]
    fn the_fixtures_render_as_the_staged_path_renders_them() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/soa-configs");
        let settings = settings();
        let mut outcomes = [0; 4];
        for cluster in ["pnw-prod", "norcal-devc"] {
            let (per_service, expected) = both_ways(&root, &settings, cluster, None, None);
            outcomes[0] += expected.resources.len();
            outcomes[1] += expected.skipped.len();
            outcomes[2] += expected.failed.len();
            outcomes[3] += expected.unknown_services.len();
            assert_eq!(per_service, expected, "{cluster}");
        }
        // The fixtures hold every outcome: rendered, skipped, failed, unknown.
        assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    }

    #[test]
    fn one_service_and_one_instance_render_as_the_staged_path_renders_them() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/soa-configs");
        let settings = settings();
        let cluster = "pnw-prod";
        let (_, all) = both_ways(&root, &settings, cluster, None, None);
        let one = &all.resources[0];
        let service = Some(one.service.as_str());
        let instance = Some(one.instance.as_str());
        for (only_service, only_instance) in
            [(service, None), (service, instance), (None, instance)]
        {
            let (per_service, expected) =
                both_ways(&root, &settings, cluster, only_service, only_instance);
            assert!(!expected.resources.is_empty());
            assert_eq!(per_service, expected);
        }
    }

    #[cfg(unix)]
    #[test]
    fn refused_services_stay_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("svc")).expect("mkdir");
        std::fs::write(root.join("svc/flink-c1.yaml"), "main: {}\n").expect("write");
        std::os::unix::fs::symlink("/etc", root.join("escaped")).expect("ln");
        let settings = settings();
        let (desired, staged) = both_ways(root, &settings, "c1", None, None);
        assert_eq!(desired, staged);
        assert!(desired.unknown_services.contains_key("escaped"));
        assert_eq!(desired.skipped.len(), 1, "{desired:?}");
    }
}
