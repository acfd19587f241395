# Every entry point of the project. CI calls only these targets (.ci/run -> make test).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Heavy, version-keyed builds live outside the repo so clean clones and CI reuse them.
export KCS_CACHE ?= /var/cache/kubed-cross-sync
# The testbed finds kube-apiserver, kube-controller-manager, etcd and kubectl in KUBE_TEST_ASSETS
# (envtest's KUBEBUILDER_ASSETS convention). setup prepares one such directory per Kubernetes
# version under $(KCS_CACHE)/versions/ (scripts/kube-versions.sh lists them) and builds nothing
# when *you* set KUBE_TEST_ASSETS to binaries of your own.
USER_KUBE_TEST_ASSETS := $(KUBE_TEST_ASSETS)
# The versions `make test` runs the end-to-end suite on ("1.20 1.32"; default: every prepared one),
# and the one demo, testbed-up and bench use (default: the newest prepared).
export KUBE_VERSIONS ?=
KUBE_VERSION ?=
# Shell text for a recipe: the chosen version's directory (fails when it is not prepared).
KUBE_ASSETS = $$(if [ -n "$(USER_KUBE_TEST_ASSETS)" ]; then echo "$(USER_KUBE_TEST_ASSETS)"; else bash scripts/kube-versions.sh dir $(KUBE_VERSION); fi)
export KCS_VENV ?= $(KCS_CACHE)/venv
CARGO ?= cargo
# Where cargo puts binaries (CI keeps it in the cache: see .ci/run).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
DEMO_DIR ?= $(CURDIR)/.testbed-demo

.PHONY: help setup build release lint test test-unit test-e2e kube-versions demo testbed-up testbed-down bench bench-fleet bench-kubeconfig-gen soak fuzz clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install prerequisites; build kube-apiserver v1.20.2, unpack v1.32 when at hand, fetch both kubectls (idempotent)
	KUBE_TEST_ASSETS="$(USER_KUBE_TEST_ASSETS)" bash scripts/setup.sh

build: ## debug build of every crate
	$(CARGO) build --workspace --all-targets

release: ## release build of the two product binaries
	$(CARGO) build --release -p kubeconfig-gen -p sync-daemon

lint: setup ## rustfmt check + clippy -D warnings + packaging lint (hadolint, kustomize, kubernetes-validate, checkov)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/lint-manifests.sh

test: setup ## unit tests, then the end-to-end suite on every prepared Kubernetes version (runs setup first)
	$(KCS_VENV)/bin/python -m unittest discover -s tests/aws
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --lib --bins --no-fail-fast
	KUBE_TEST_ASSETS="$(USER_KUBE_TEST_ASSETS)" CARGO="$(CARGO)" bash scripts/test-e2e.sh

test-unit: ## unit tests only (no clusters)
	$(CARGO) test --workspace --lib --bins

test-e2e: ## the end-to-end suite only, on KUBE_VERSIONS (default: every prepared version)
	$(CARGO) build --workspace --all-targets
	KUBE_TEST_ASSETS="$(USER_KUBE_TEST_ASSETS)" CARGO="$(CARGO)" bash scripts/test-e2e.sh

kube-versions: ## list the Kubernetes versions setup prepared
	@bash scripts/kube-versions.sh list

demo: setup ## the seed scenario end to end on local clusters (KUBE_VERSION=1.20 for the older one)
	$(CARGO) build -p e2e -p kubeconfig-gen -p sync-daemon
	assets=$(KUBE_ASSETS); KUBE_TEST_ASSETS=$$assets bash scripts/demo.sh "$(DEMO_DIR)"

TESTBED_DIR ?= $(CURDIR)/.testbed
testbed-up: ## start 3 clusters + the AWS world in .testbed/ and leave them running
	$(CARGO) build -p e2e --bin testbed
	assets=$(KUBE_ASSETS); KUBE_TEST_ASSETS=$$assets $(TARGET_DIR)/debug/testbed up --dir "$(TESTBED_DIR)" --aws

testbed-down: ## stop the testbed started by testbed-up (every process, by pid)
	$(TARGET_DIR)/debug/testbed down --dir "$(TESTBED_DIR)"

# BENCH_ARGS: e.g. "--phases latency --runs 5" (see `target/release/bench --help`).
BENCH_ARGS ?=
bench: setup ## benchmarks against testbed clusters and the release daemon, then bench-kubeconfig-gen (figures for BENCHMARKS.md)
	$(CARGO) build --release -p sync-daemon -p kubeconfig-gen -p e2e --bin sync-daemon --bin kubeconfig-gen --bin bench --bin testbed
	assets=$(KUBE_ASSETS); KUBE_TEST_ASSETS=$$assets $(TARGET_DIR)/release/bench --out $(TARGET_DIR)/bench-results.md $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-kubeconfig-gen

# The fleet phase alone (issue 14 item 9): 1, 10 and 30 follower contexts on up to 10 follower
# clusters, every one through `kubeconfig-gen token` → STS (moto) → the EKS-style webhook.
bench-fleet: setup ## the fleet benchmark alone: RSS, threads, connections, exec plugins, STS calls, first sync, 1 MiB fan-out
	$(CARGO) build --release -p sync-daemon -p kubeconfig-gen -p e2e --bin sync-daemon --bin kubeconfig-gen --bin bench --bin testbed
	assets=$(KUBE_ASSETS); KUBE_TEST_ASSETS=$$assets $(TARGET_DIR)/release/bench --phases fleet --runs 3 --out $(TARGET_DIR)/bench-fleet.md $(BENCH_ARGS)

# KCG_BENCH: the world and phases, e.g. "CLUSTERS=10 ACCOUNTS=5 REGIONS=1 PHASES=generate" (default 50/25/2,
# every phase; see scripts/bench-kubeconfig-gen.sh). Needs no testbed: a private moto_server.
KCG_BENCH ?=
bench-kubeconfig-gen: setup ## kubeconfig-gen vs awscli (generate, watch rounds, token) on a private moto; KCG_BENCH sets the world
	$(CARGO) build --release -p kubeconfig-gen
	env $(KCG_BENCH) bash scripts/bench-kubeconfig-gen.sh $(TARGET_DIR)/release/kubeconfig-gen

soak: setup ## long fault runs (60 s outages, 40 watch cuts, 20 daemon kills over 1,000 sources, 20 updates/s for 5 min to 10 followers, 5,000 random model ops)
	$(CARGO) build --release -p sync-daemon
	assets=$(KUBE_ASSETS); KUBE_TEST_ASSETS=$$assets KCS_SOAK=1 KCS_SYNC_DAEMON=$(TARGET_DIR)/release/sync-daemon \
	  $(CARGO) test -p e2e --test faults --test load --test model -- --nocapture

# Fuzzing needs cargo-fuzz (`cargo install cargo-fuzz`) and RUSTC_BOOTSTRAP=1: see fuzz/README.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := aws_profiles sync_annotations kubeconfig_load
fuzz: ## run every fuzz target for FUZZ_SECONDS each (default 60)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -a $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 || exit 1; \
	done

clean: ## remove build output in the repo (the cache outside is kept)
	$(CARGO) clean
