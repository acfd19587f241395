//! sync-daemon: mirrors ConfigMaps and Secrets annotated the kubed way into other namespaces
//! and into follower clusters.
pub mod args;
