# Every entry point of the project. CI calls only these targets (.ci/run -> make test).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Heavy, version-keyed builds live outside the repo so clean clones and CI reuse them.
export KCS_CACHE ?= /var/cache/kubed-cross-sync
# The testbed and the tests find kube-apiserver, kube-controller-manager and etcd here
# (envtest's KUBEBUILDER_ASSETS convention; set it yourself to use your own binaries).
export KUBE_TEST_ASSETS ?= $(KCS_CACHE)/kube
export KCS_KUBECTL ?= $(KCS_CACHE)/kubectl/kubectl
export KCS_VENV ?= $(KCS_CACHE)/venv
CARGO ?= cargo
DEMO_DIR ?= $(CURDIR)/.testbed-demo

.PHONY: help setup build release lint test test-unit test-e2e demo bench soak clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install Debian/PyPI prerequisites and build (or find) kube-apiserver v1.20.2 (idempotent)
	bash scripts/setup.sh

build: ## debug build of every crate
	$(CARGO) build --workspace --all-targets

release: ## release build of the two product binaries
	$(CARGO) build --release -p kubeconfig-gen -p sync-daemon

lint: ## rustfmt check + clippy -D warnings + packaging lint (hadolint, kustomize, kubernetes-validate, checkov)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/lint-manifests.sh

test: setup ## unit + end-to-end tests (runs setup first)
	$(KCS_VENV)/bin/python -m unittest discover -s tests/aws
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

test-unit: ## unit tests only (no clusters)
	$(CARGO) test --workspace --lib --bins

demo: setup ## the seed scenario end to end on local clusters
	$(CARGO) build -p e2e -p kubeconfig-gen -p sync-daemon
	bash scripts/demo.sh "$(DEMO_DIR)"

bench: setup ## benchmarks (figures go to BENCHMARKS.md)
	@echo "no benchmarks yet"

soak: setup ## long fault/soak runs
	@echo "no soak runs yet"

clean: ## remove build output in the repo (the cache outside is kept)
	$(CARGO) clean
