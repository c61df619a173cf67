#!/bin/sh
# cargo-skeleton.sh OUT — run by the Dockerfile's `skeleton` stage in a copy of the workspace:
# writes to OUT every Cargo.toml and Cargo.lock, and an empty stand-in for each target root a
# package may have (src/lib.rs, src/main.rs, src/bin/*, build.rs, examples, benches, tests).
# `cargo build` on OUT compiles the dependencies only; OUT changes only when a manifest, the
# lock file or the set of targets does, so that layer stays cached while sources change.
set -eu
out=$1
mkdir -p "$out"
cp Cargo.lock "$out/"
find . -path ./target -prune -o -name Cargo.toml -print | while read -r manifest; do
  dir=$(dirname "$manifest")
  mkdir -p "$out/$dir"
  cp "$manifest" "$out/$dir/"
  for f in "$dir"/src/lib.rs "$dir"/build.rs "$dir"/src/main.rs "$dir"/src/bin/*.rs \
    "$dir"/src/bin/*/main.rs "$dir"/examples/*.rs "$dir"/benches/*.rs "$dir"/tests/*.rs; do
    if [ -f "$f" ]; then
      mkdir -p "$out/$(dirname "$f")"
      case "$f" in
        */src/lib.rs) : >"$out/$f" ;;
        *) echo 'fn main() {}' >"$out/$f" ;;
      esac
    fi
  done
done
