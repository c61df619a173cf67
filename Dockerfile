# bank-transfer: one image for every part of the demo — the RocketMQ name server and broker
# (`bank-transfer namesrv|broker`), bank1, bank2 and the `mqadmin` CLI.
#
#   docker compose up --build                      # default target `release`: compiles from source
#   docker build -t bank-transfer:local .          # the same, by hand
#   docker build --target prebuilt -t bank-transfer:local -f Dockerfile CONTEXT
#       # CONTEXT holds docker/ (this repo's) and dist/ (binaries built on the host, e.g.
#       # target/release/{bank-transfer,bank1,bank2,mqadmin}) — the repo itself once dist/ is
#       # filled, or a staging dir; CI uses this so the workspace is compiled once
#       # (tests/compose.sh shows how).
#
# Stages are ordered so that `--target prebuilt` never touches the Rust image, even with the
# classic (non-BuildKit) builder, which runs every stage up to the target in file order.
#
# Base images are build args so the image can be built where no registry is reachable:
#   --build-arg BASE_IMAGE=<a local Debian bookworm image with bash, curl, ca-certificates>
#   --build-arg RUST_IMAGE=<a local Rust ≥ 1.95 image on bookworm>
ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-slim-bookworm

# --- runtime: what every final image is made of --------------------------------------------
FROM ${BASE_IMAGE} AS runtime
# curl (healthchecks, and handy inside the containers) and CA certificates; a base that has
# them already (the offline test's) skips apt entirely.
RUN set -eux; \
    missing=""; \
    command -v curl >/dev/null 2>&1 || missing="$missing curl"; \
    [ -s /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    command -v bash curl; \
    useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin bank; \
    mkdir -p /data/namesrv /data/broker; \
    chown -R bank:bank /data
COPY docker/bt-serve docker/bt-init-topic /usr/local/bin/
# Services listen on 0.0.0.0 inside the container; the compose file publishes the ports.
ENV RUST_LOG=warn,bank1=info,bank2=info,bank_transfer=info \
    NAMESRV_ADDR=namesrv:9876 \
    BANK1_LISTEN=0.0.0.0:56081 \
    BANK2_LISTEN=0.0.0.0:56082
WORKDIR /data
USER bank
# namesrv, broker (port-2, port, port+1), bank1, bank2
EXPOSE 9876 10909 10911 10912 56081 56082
CMD ["bank-transfer", "--help"]

# --- prebuilt: binaries from the build context's dist/ (no compiler involved) ------------------
FROM runtime AS prebuilt
# `dis[t]` rather than `dist/`: the classic builder also runs this stage when it builds the
# default target from source, where there is no dist/, and a pattern that matches nothing is
# allowed beside a file that exists (bt-serve, copied again unchanged).
COPY docker/bt-serve dis[t] /usr/local/bin/
RUN if command -v bank-transfer >/dev/null; then \
      bank-transfer --help >/dev/null && bank1 --help >/dev/null && bank2 --help >/dev/null; \
    else \
      echo "prebuilt: no dist/bank-transfer in the build context (fine unless this is the target)"; \
    fi

# --- skeleton: the workspace's manifests with empty sources, to cache the dependency build -----
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
# Manifests, lock file and empty target roots (docker/cargo-skeleton.sh): the dependency
# layer below is rebuilt only when they change.
RUN sh docker/cargo-skeleton.sh /skel

# --- builder: compiles the workspace from source (needs crates.io) ---------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY --from=skeleton /skel/ ./
RUN cargo fetch --locked && cargo build --release --locked --workspace
COPY . .
# The real sources replace the stand-ins: make them newer than the stand-ins' build.
# What ships: the launcher without the bench/chaos tools (`--no-default-features`), the two
# banks and mqadmin.
RUN set -eu; find . -path ./target -prune -o -name '*.rs' -exec touch {} +; \
    cargo build --release --locked -p bank-transfer --no-default-features; \
    cargo build --release --locked -p bank1 -p bank2; \
    cargo build --release --locked -p tools --bin mqadmin; \
    mkdir /out; \
    cp target/release/bank-transfer target/release/bank1 target/release/bank2 target/release/mqadmin /out/; \
    ls -l /out

# --- release (default): the runtime with the binaries compiled above ---------------------------
FROM runtime AS release
COPY --from=builder /out/ /usr/local/bin/
RUN bank-transfer --help >/dev/null && bank1 --help >/dev/null && bank2 --help >/dev/null
