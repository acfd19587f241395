//! Which namespaces of a target cluster should hold a copy of a source: intra-cluster by the
//! `sync` selector over the source cluster's namespaces, in a follower by `sync-contexts` over
//! every context that reaches it.
use crate::plan::annotations::IntraSync;
use crate::plan::kinds::NamespaceView;
use crate::plan::source::Source;
use std::collections::BTreeSet;

/// Where a plan is computed for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<'a> {
    /// Intra-cluster copies in the source cluster.
    Local { namespaces: &'a [NamespaceView] },
    /// A follower reached through kubeconfig context `context` (with its default namespace) and
    /// through `aliases`, the other contexts that reach the same cluster (name, default
    /// namespace): one cluster wants what any of its contexts asks for, so a copy made through
    /// one context is never an orphan of another. `namespaces` are the follower's own (for
    /// sources that choose follower namespaces by selector).
    Context {
        context: &'a str,
        namespace: Option<&'a str>,
        aliases: &'a [(String, Option<String>)],
        namespaces: &'a [NamespaceView],
    },
}

/// Namespaces of `target` that should hold a copy of `src`.
pub fn wanted(src: &Source<'_>, target: &Target<'_>) -> BTreeSet<String> {
    match target {
        Target::Local { namespaces } => match &src.spec.intra {
            None => BTreeSet::new(),
            Some(intra) => namespaces
                .iter()
                .filter(|n| n.name != src.object.namespace)
                .filter(|n| picked(src, intra, n))
                .map(|n| n.name.clone())
                .collect(),
        },
        Target::Context {
            context,
            namespace,
            aliases,
            namespaces,
        } => std::iter::once((*context, *namespace))
            .chain(aliases.iter().map(|(c, ns)| (c.as_str(), ns.as_deref())))
            .flat_map(|(ctx, ns)| through(src, ctx, ns, namespaces))
            .collect(),
    }
}

/// The context of `target` through which `namespace` is wanted (the first that asks for it).
pub fn wanted_through<'a>(
    src: &Source<'_>,
    target: &Target<'a>,
    namespace: &str,
) -> Option<&'a str> {
    match target {
        Target::Local { .. } => None,
        Target::Context {
            context,
            namespace: ns,
            aliases,
            namespaces,
        } => std::iter::once((*context, *ns))
            .chain(aliases.iter().map(|(c, ns)| (c.as_str(), ns.as_deref())))
            .find(|(ctx, ns)| through(src, ctx, *ns, namespaces).any(|n| n == namespace))
            .map(|(ctx, _)| ctx),
    }
}

/// Whether a selector picks namespace `n` for `src`: not going away, not excluded.
fn picked(src: &Source<'_>, sel: &IntraSync, n: &NamespaceView) -> bool {
    !n.terminating && !src.spec.policy.exclude.contains(&n.name) && sel.picks(n)
}

/// What one context asks for: each item naming it, in its own namespace; else, with a
/// follower-namespaces selector, every follower namespace it picks; else the context's default
/// namespace, else the source's.
fn through<'s>(
    src: &'s Source<'_>,
    context: &'s str,
    default_ns: Option<&'s str>,
    namespaces: &'s [NamespaceView],
) -> impl Iterator<Item = String> + 's {
    let by_selector = src.spec.policy.follower_namespaces.as_ref();
    src.spec
        .contexts
        .iter()
        .filter(move |c| c.context == context)
        .flat_map(move |c| -> Box<dyn Iterator<Item = String> + 's> {
            match (&c.namespace, by_selector) {
                (Some(ns), _) => Box::new(std::iter::once(ns.clone())),
                (None, Some(sel)) => Box::new(
                    namespaces
                        .iter()
                        .filter(move |n| picked(src, sel, n))
                        .map(|n| n.name.clone()),
                ),
                (None, None) => Box::new(std::iter::once(
                    default_ns.unwrap_or(&src.object.namespace).to_string(),
                )),
            }
        })
}
