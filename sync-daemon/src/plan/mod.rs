//! The pure planner: is an object a source, which copies should exist where, and what must be
//! done to the copies observed to get there; how a reconcile ended and what happens next. No I/O
//! (no client, no runtime, no Events): `run`, `once` and `status` all plan through these
//! functions, and they are tested without a server (a test below keeps I/O out of this folder).
pub mod annotations;
pub mod decide;
pub mod diff;
pub mod key;
pub mod kinds;
pub mod objects;
pub mod outcome;
pub mod policy;
pub mod scope;
pub mod selector;
pub mod source;
pub mod summary;
pub mod wanted;

pub use decide::KeyPlan;
pub use diff::Action;
pub use key::SourceKey;
pub use kinds::{Kind, NamespaceView, ObjectView, Payload};
pub use outcome::{Failure, Next, Outcome};
pub use policy::{MetadataFilter, OnDelete, Policy};
pub use scope::Scope;
pub use source::{Contexts, NotSource, Problem, Settings, Source};
pub use wanted::Target;

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    /// What a planner file must not use: clients, the async runtime, Events, files, sockets,
    /// processes. (Kubernetes *types* — k8s-openapi, `kube::Resource` — are data and allowed.)
    const IO: &[&str] = &[
        "kube::Api",
        "kube::Client",
        "kube::api",
        "kube::client",
        "kube::runtime",
        "Recorder",
        "tokio",
        "async fn",
        ".await",
        "std::fs",
        "std::net",
        "std::process",
        "std::thread",
        "std::env",
        "hyper",
        "axum",
        "tracing::",
    ];

    #[test]
    fn planner_files_do_no_io() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("src/plan is readable") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !name.ends_with(".rs") || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a planner file is readable");
            // Only the product code: unit tests below `#[cfg(test)]` may do what they like.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for needle in IO {
                assert!(
                    !code.contains(needle),
                    "{name} uses {needle:?}: the planner is pure"
                );
            }
            checked += 1;
        }
        assert!(
            checked >= 10,
            "only {checked} planner files found in {}",
            dir.display()
        );
    }
}
