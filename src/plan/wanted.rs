//! Pure: which object names a desired set wants or may want, whatever the
//! labels of the live objects say.
//!
//! An orphan is an object nothing wants. Besides the rendered resources, a
//! name is wanted by an instance that is only skipped or failed (it would
//! render that name once deployed or fixed), and may be wanted by a service
//! that failed to load: its objects' names start with its sanitised name
//! and a `-`. Names are compared without their namespace and kind, which
//! only ever holds back more.

use crate::render::{DesiredSet, meta};
use std::borrow::Cow;
use std::collections::HashSet;

/// The names a desired set wants, and the services whose names it may want.
/// Borrows the rendered names from the desired sets: only the names of
/// skipped and failed instances are built.
#[derive(Debug, Default)]
pub struct WantedNames<'d> {
    names: HashSet<Cow<'d, str>>,
    /// `(sanitised name + "-", service)` of each service that failed to load.
    unknown_prefixes: Vec<(String, &'d str)>,
}

/// Why a live object is not an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held<'a> {
    /// Rendered, skipped or failed under this name.
    Wanted,
    /// Its name may be rendered by this service, which failed to load.
    MaybeWantedBy(&'a str),
}

impl<'d> WantedNames<'d> {
    #[must_use]
    pub fn of(desired: &'d DesiredSet) -> Self {
        let mut wanted = WantedNames::default();
        wanted.add(desired);
        wanted
    }

    /// Adds what `desired` wants (one service's set, say).
    pub fn add(&mut self, desired: &'d DesiredSet) {
        let names = &mut self.names;
        names.extend(
            desired
                .resources
                .iter()
                .map(|r| Cow::Borrowed(r.name.as_str())),
        );
        names.extend(
            desired
                .skipped
                .iter()
                .map(|s| Cow::Owned(meta::resource_name(&s.service, &s.instance))),
        );
        names.extend(
            desired
                .failed
                .iter()
                .map(|f| Cow::Owned(meta::resource_name(&f.service, &f.instance))),
        );
        self.unknown_prefixes
            .extend(desired.unknown_services.keys().map(|service| {
                (
                    format!("{}-", meta::sanitise_name(service)),
                    service.as_str(),
                )
            }));
    }

    /// Whether (and why) an object of this name must not be pruned.
    #[must_use]
    pub fn holds(&self, name: &str) -> Option<Held<'_>> {
        if self.names.contains(name) {
            return Some(Held::Wanted);
        }
        self.unknown_prefixes
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|(_, service)| Held::MaybeWantedBy(service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Diagnostic;
    use crate::render::{FailedInstance, SkippedInstance};

    #[test]
    fn skipped_failed_and_unknown_services_hold_their_names() {
        let mut desired = DesiredSet::default();
        desired.skipped.push(SkippedInstance {
            service: "Alpha".into(),
            instance: "main".into(),
            file_prefix: "flink".into(),
            reason: "not deployed".into(),
        });
        desired.failed.push(FailedInstance {
            service: "beta_svc".into(),
            instance: "x".into(),
            file_prefix: "flink".into(),
            diagnostic: Diagnostic::file("f", "bad"),
        });
        desired
            .unknown_services
            .insert("Gamma".into(), vec![Diagnostic::file("g", "bad")]);
        let wanted = WantedNames::of(&desired);
        assert_eq!(wanted.holds("alpha-main"), Some(Held::Wanted));
        assert_eq!(wanted.holds("beta--svc-x"), Some(Held::Wanted));
        assert_eq!(
            wanted.holds("gamma-anything"),
            Some(Held::MaybeWantedBy("Gamma"))
        );
        assert_eq!(wanted.holds("alpha-canary"), None);
        assert_eq!(wanted.holds("gammaray-main"), None);
    }
}
