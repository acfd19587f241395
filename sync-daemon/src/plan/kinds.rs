//! What the planner sees of Kubernetes objects: ConfigMap and Secret reduced to one
//! [`ObjectView`] (metadata + [`Payload`]), and namespaces as far as selection goes.
use k8s_openapi::ByteString;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// What a copy carries besides metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    ConfigMap {
        data: BTreeMap<String, String>,
        binary_data: BTreeMap<String, ByteString>,
        immutable: bool,
    },
    Secret {
        type_: String,
        data: BTreeMap<String, ByteString>,
        immutable: bool,
    },
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::ConfigMap { .. } => Kind::ConfigMap,
            Payload::Secret { .. } => Kind::Secret,
        }
    }
    pub(crate) fn immutable(&self) -> bool {
        match self {
            Payload::ConfigMap { immutable, .. } | Payload::Secret { immutable, .. } => *immutable,
        }
    }
    pub(crate) fn secret_type(&self) -> Option<&str> {
        match self {
            Payload::Secret { type_, .. } => Some(type_),
            Payload::ConfigMap { .. } => None,
        }
    }
    /// Keys (`data.k`, `binaryData.k`) present here and absent from `desired`. Server-side apply
    /// does not remove keys another manager added by hand, so these get an explicit removal.
    pub fn extra_keys(&self, desired: &Payload) -> Vec<(&'static str, String)> {
        fn extra<V>(
            field: &'static str,
            have: &BTreeMap<String, V>,
            want: &BTreeMap<String, V>,
        ) -> Vec<(&'static str, String)> {
            have.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| (field, k.clone()))
                .collect()
        }
        match (self, desired) {
            (
                Payload::ConfigMap {
                    data, binary_data, ..
                },
                Payload::ConfigMap {
                    data: d2,
                    binary_data: b2,
                    ..
                },
            ) => {
                let mut v = extra("data", data, d2);
                v.extend(extra("binaryData", binary_data, b2));
                v
            }
            (Payload::Secret { data, .. }, Payload::Secret { data: d2, .. }) => {
                extra("data", data, d2)
            }
            _ => Vec::new(),
        }
    }
}

/// A ConfigMap or Secret as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectView {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub payload: Payload,
    /// Label / annotation keys our field manager applied last time (from managedFields).
    pub our_labels: BTreeSet<String>,
    pub our_annotations: BTreeSet<String>,
    pub deleting: bool,
}

impl ObjectView {
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }
}

/// A namespace of the source cluster, as far as selection goes.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub terminating: bool,
}
