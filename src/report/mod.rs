//! Pure reports built from plans: [`ci`] compares two revisions (or a
//! revision and live objects) and renders pull-request comments.

pub mod ci;
