#!/usr/bin/env bash
# The console in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven
# by Python selenium (PyPI, in a venv) against a local stack started by the launcher, as
# `cargo run --release` starts it, with time compressed (retries 1 s apart, check-backs within
# seconds). console_test.py sends transfers through the form, follows them in the list and on
# their timelines (happy path, a check-back, failed deliveries), flips fault switches, and checks
# that money is conserved. Screenshots go to tests/browser/screenshots/ (or $SCREENSHOTS).
#
#   apt-get install chromium chromium-driver fonts-wqy-zenhei   # once (the font: the CJK account names)
#   cargo build --release && tests/browser/run.sh
#
# Env: BANK_TRANSFER_BIN (the binary), SCREENSHOTS (the folder), BROWSER_VENV (selenium's venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=${BANK_TRANSFER_BIN:-${CARGO_TARGET_DIR:-target}/release/bank-transfer}
[ -x "$bin" ] || { echo "no $bin: cargo build --release first" >&2; exit 2; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null \
  || { echo "needs chromium and chromedriver: apt-get install chromium chromium-driver" >&2; exit 2; }

venv=${BROWSER_VENV:-$HOME/.cache/bank-transfer/browser}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'selenium>=4.20,<5'
fi

export SCREENSHOTS=${SCREENSHOTS:-$root/tests/browser/screenshots}
mkdir -p "$SCREENSHOTS"
data=$(mktemp -d /tmp/bt-browser.XXXXXX)
# Time compressed as in the tests: retries 1 s apart, check-backs within seconds.
export BANK_TRANSFER_MESSAGE_DELAY_LEVEL="$(printf '1s %.0s' $(seq 18))"
export BANK_TRANSFER_TRANSACTION_TIMEOUT=3000 BANK_TRANSFER_TRANSACTION_CHECK_INTERVAL=5000
export BANK1_RECONCILE_INTERVAL=2s BANK1_RECONCILE_GRACE=2s BANK2_RECONCILE_INTERVAL=2s BANK2_RECONCILE_GRACE=2s
# Fixed ports below Linux's ephemeral range (32768-60999): no outgoing connection of this
# machine can be holding them when the stack binds.
"$bin" --data-dir "$data" --namesrv-port 19886 --broker-port 20931 \
  --bank1-listen 127.0.0.1:26281 --bank2-listen 127.0.0.1:26282 --console-listen 127.0.0.1:26280 \
  >"$data/stack.log" 2>&1 &
pid=$!
stop() {
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap stop EXIT

for _ in $(seq 1 240); do
  grep -q "bank-transfer is up" "$data/stack.log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/stack.log"; exit 1; }
  sleep 0.5
done
grep "console " "$data/stack.log" || { cat "$data/stack.log"; exit 1; }

status=0
CONSOLE=http://127.0.0.1:26280 "$venv/bin/python" "$root/tests/browser/console_test.py" || status=1
[ "$status" = 0 ] || tail -n 50 "$data/stack.log"
ls -l "$SCREENSHOTS"
exit "$status"
