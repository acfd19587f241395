//! Operations, beside the controller: the admin server and health probes, metrics, leader
//! election, the one Event sink, the outcome hooks (`run`'s metrics and first-sync notices,
//! `once`'s tally) and logging. Nothing here depends on the controller.
pub mod admin;
pub mod events;
pub mod health;
pub mod hooks;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod notices;
pub mod signals;
