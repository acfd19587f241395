# syntax=docker/dockerfile:1
# The one image of the sync pod: kubeconfig-gen (init step, and the kubeconfig's exec credential plugin) and
# sync-daemon. No shell, no awscli, no Python: the seed's alpine + awscli init container is gone.
#
#   docker build -t kubed-cross-sync:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# Runtime base: distroless "cc" rather than "static": the binaries are linked against glibc and libgcc_s
# (`ldd target/release/sync-daemon`), which cc-debian12 provides, with CA certificates, and nothing else.
# A fully static glibc build would lose NSS, on which getaddrinfo (the EKS endpoint names) relies.

# Base images are pinned by digest: a rebuild uses the very image that was tested, while the tag says which
# release it is. To move to a newer one, take the digest of the tag's multi-platform index, with either of
#   docker buildx imagetools inspect rust:1.95.0-bookworm      (the "Digest:" line)
#   crane digest rust:1.95.0-bookworm
# and replace tag and digest together in the FROM line (the builder's Rust must stay at or above the
# workspace's rust-version, Cargo.toml). The same for gcr.io/distroless/cc-debian12:nonroot below; that tag
# is rebuilt with Debian's security updates, so re-pin it now and then even when nothing else changes.

FROM rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kubeconfig-gen -p sync-daemon \
    && install -D -m 0755 -t /out target/release/kubeconfig-gen target/release/sync-daemon

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kubed-cross-sync" \
      org.opencontainers.image.description="kubeconfig-gen + sync-daemon: kubed-compatible ConfigMap/Secret sync across EKS clusters" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/kubed-cross-sync"
# glibc's allocator with a fixed mmap threshold: every block of 128 KiB or more (a large payload, its
# JSON, a response body) is its own mapping, returned to the system when freed. Left dynamic, glibc
# raises the threshold after the first such free and serves later large blocks from its heaps, which
# keep the pages: a 1 MiB Secret fanned out to 10 followers then left +30 MiB of RSS instead of +15
# (BENCHMARKS.md, "Fleet"). The tests and benchmarks run the daemon with the same setting.
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072
COPY --from=builder /out/ /usr/local/bin/
# The seed's uid. Nothing is written inside the image: the kubeconfig goes to a mounted emptyDir, so the
# root filesystem can be (and in manifests/mgmt/base is) read-only.
USER 1000:1000
WORKDIR /
# Health is Kubernetes' business (probes on /livez and /readyz, manifests/mgmt/base); a Docker HEALTHCHECK would
# need a shell or curl in the image, and Kubernetes ignores it anyway.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/sync-daemon"]
CMD ["run"]
