# bank-transfer: one image for every part of the demo — the RocketMQ name server and broker
# (`bank-transfer namesrv|broker`), bank1, bank2 and the `mqadmin` CLI.
#
#   docker compose up --build                      # default target `release`: compiles from source
#   docker build -t bank-transfer:local .          # the same, by hand
#   docker build --target prebuilt -t bank-transfer:local -f Dockerfile CONTEXT
#       # CONTEXT holds docker/ (this repo's) and dist/ (binaries built on the host, e.g.
#       # target/release/{bank-transfer,bank1,bank2,mqadmin}); CI uses this so the workspace
#       # is compiled once. tests/compose.sh shows how.
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
COPY dist/ /usr/local/bin/
RUN bank-transfer --help >/dev/null && bank1 --help >/dev/null && bank2 --help >/dev/null

# --- skeleton: the workspace's manifests with empty sources, to cache the dependency build -----
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
# Every manifest and the lock file, plus an empty stand-in for each target root it may declare
# (src/lib.rs, src/main.rs, src/bin/*, build.rs, …). The output changes only when a manifest,
# the lock file or the set of targets changes, so the dependency layer below stays cached.
RUN set -eu; mkdir /skel; cp Cargo.lock /skel/; \
    find . -path ./target -prune -o -name Cargo.toml -print | while read -r m; do \
      d=$(dirname "$m"); mkdir -p "/skel/$d"; cp "$m" "/skel/$d/"; \
      for f in "$d"/src/lib.rs; do [ -f "$f" ] && touch "/skel/$f"; done; \
      for f in "$d"/build.rs "$d"/src/main.rs "$d"/src/bin/*.rs "$d"/src/bin/*/main.rs \
               "$d"/examples/*.rs "$d"/benches/*.rs "$d"/tests/*.rs; do \
        [ -f "$f" ] || continue; mkdir -p "/skel/$(dirname "$f")"; echo 'fn main() {}' > "/skel/$f"; \
      done; \
    done

# --- builder: compiles the workspace from source (needs crates.io) ---------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY --from=skeleton /skel/ ./
RUN cargo fetch --locked && cargo build --release --locked --workspace
COPY . .
# The real sources replace the stand-ins: make them newer than the stand-ins' build.
RUN set -eu; find . -path ./target -prune -o -name '*.rs' -exec touch {} +; \
    cargo build --release --locked --workspace; \
    mkdir /out; \
    find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} /out/ \; ; \
    ls -l /out

# --- release (default): the runtime with the binaries compiled above ---------------------------
FROM runtime AS release
COPY --from=builder /out/ /usr/local/bin/
