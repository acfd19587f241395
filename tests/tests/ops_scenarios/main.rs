//! sync-daemon in production (issue 5), on the shared three-cluster testbed: leader election
//! and failover, /readyz and /metrics after a known sequence of operations, Events for every
//! reason, dry-run, `status`, fast-expiring exec tokens, SIGTERM, the seed's exact args, and a
//! trace-level log scan for secret values. Each test owns unique namespaces and its daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod agree;
mod commands;
mod identity;
mod leader;
mod logs;
mod observability;
mod ops_common;
mod reload;
mod tokens;

use std::time::{Duration, Instant};

use e2e::daemon::{Daemon, metric_value};
use e2e::k8s::*;
use e2e::world::{World, once};
use e2e::{MGMT, PROJECT, PROJECT2, audit, unique_ns, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use ops_common::*;
use serde_json::{Value, json};

/// `run` args scoped to `ns` (plus `extra`).
fn run_args<'a>(kc: &'a str, ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--kubeconfig-file",
        kc,
        "--cluster-name",
        "mc-mgmt",
        "--config-source-namespace",
        ns,
    ];
    v.extend_from_slice(extra);
    v
}

async fn wait_ready(p: &mut Daemon) {
    p.wait_ready(SOON)
        .await
        .unwrap_or_else(|e| panic!("{}", e2e::error_chain(&e)));
}

async fn cm_data(c: &Client, ns: &str, name: &str) -> Option<String> {
    get::<ConfigMap>(c, ns, name)
        .await
        .unwrap()
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("k").cloned())
}

/// Source `name` (k=`value`) in `ns` of mc-mgmt for mc-project, and its copy there.
async fn synced_to_project(w: &World<'_>, ns: &str, name: &str, value: &str) {
    let src = configmap(name, &[(SYNC_CONTEXTS, PROJECT)], &[], &[("k", value)]);
    create(&w.mgmt, ns, &src).await.unwrap();
    wait_cm_data(&w.project, ns, name, value, SOON).await;
}

async fn wait_cm_data(c: &Client, ns: &str, name: &str, want: &str, limit: Duration) {
    wait_for(&format!("{ns}/{name} k={want}"), limit, || async {
        (cm_data(c, ns, name).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_agrees_with_run_for_aliases_and_terminating_namespaces() {
    agree::status_agrees_with_run_for_aliases_and_terminating_namespaces().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_cluster_by_two_urls_is_one_follower() {
    identity::one_cluster_by_two_urls_is_one_follower().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_follow_the_kubeconfig_without_a_restart() {
    reload::followers_follow_the_kubeconfig_without_a_restart().await;
}

#[test]
fn bad_flags_exit_2_at_start() {
    commands::bad_flags_exit_2_at_start();
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_started_together_elect_one_leader_and_all_stay() {
    leader::replicas_started_together_elect_one_leader_and_all_stay().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_failover_syncs_change_made_during_gap() {
    leader::leader_failover_syncs_change_made_during_gap().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_and_metrics_count_the_operations_done() {
    observability::readyz_and_metrics_count_the_operations_done().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_for_every_reason() {
    observability::events_for_every_reason().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_logs_intended_writes_and_changes_nothing() {
    commands::dry_run_logs_intended_writes_and_changes_nothing().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_each_state() {
    commands::status_reports_each_state().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_exec_token_is_renewed_after_the_401() {
    tokens::a_rejected_exec_token_is_renewed_after_the_401().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_expiring_exec_tokens_never_fail_a_sync() {
    tokens::fast_expiring_exec_tokens_never_fail_a_sync().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_or_failing_plugin_stalls_only_its_follower() {
    tokens::a_hung_or_failing_plugin_stalls_only_its_follower().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_within_10s_and_releases_the_lease() {
    leader::sigterm_exits_within_10s_and_releases_the_lease().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_start_up_is_a_clean_stop() {
    leader::sigterm_during_start_up_is_a_clean_stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_args_start_the_daemon() {
    logs::seed_args_start_the_daemon().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_logs_never_contain_secret_values() {
    logs::trace_logs_never_contain_secret_values().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_that_loses_its_lease_exits_3() {
    leader::leader_that_loses_its_lease_exits_3().await;
}
