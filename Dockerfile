# syntax=docker/dockerfile:1
# logrelay: cached multi-stage build.
#   docker build -t logrelay .                      the runtime image
#   docker build --target builder -t logrelay-builder .
#                                                   the image third-party connector authors build
#                                                   with (same toolchain and glibc as the host)
# The builder runs scripts/build-dist, the same script CI runs, and the runtime stage copies its
# output as it is, so what CI checks is what the image holds.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

# Only the manifests: the recipe changes when dependencies change, not when sources do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The dependency build, cached in its own layer until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY . .
RUN scripts/build-dist /dist

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates follows the Debian release's security updates; pinning it would only block them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/logrelay --shell /usr/sbin/nologin logrelay
COPY --from=builder /dist/ /
RUN chown 10001:10001 /var/lib/logrelay
ENV LOGRELAY_PLUGIN_DIR=/usr/lib/logrelay/plugins \
    LOGRELAY_PLUGINS=/etc/logrelay/plugins.toml \
    LOGRELAY_HTTP_ADDR=0.0.0.0:8080 \
    LOGRELAY_ADMIN_ADDR=0.0.0.0:9464
USER 10001:10001
WORKDIR /var/lib/logrelay
EXPOSE 8080 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["logrelay", "--env-file", "/etc/logrelay/logrelay.env", "health"]
ENTRYPOINT ["logrelay", "--env-file", "/etc/logrelay/logrelay.env"]
CMD ["run"]
