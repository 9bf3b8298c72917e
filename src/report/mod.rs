//! Pure reports built from plans: [`ci`] compares two revisions (or a
//! revision and live objects) and renders pull-request comments; [`events`]
//! are deployment events and [`sinks`] deliver them.

pub mod ci;
pub mod events;
pub mod sinks;
