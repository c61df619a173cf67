#!/usr/bin/env bash
# Contract fuzzing: schemathesis against both banks' OpenAPI documents
# (`/api-docs/openapi.json`) on a running local stack, with each bank's operator and feed tokens.
# It fails on any 5xx answer, and on any answer the spec does not allow (status code, content
# type, body schema). Then it turns every fault off, resumes bank2's consumer, and checks that
# money is conserved: once everything the fuzzer sent has settled, bank1's account 1 and bank2's
# account 2 hold 1000.00 between them, as seeded.
#
#   tests/contract/run.sh              # uses target/release/bank-transfer (build it first)
#
# Env: BANK_TRANSFER_BIN (the binary), SCHEMATHESIS (the command; installed into a venv under
# ~/.cache/bank-transfer when unset and absent), CONTRACT_MAX_EXAMPLES (per operation, 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=${BANK_TRANSFER_BIN:-${CARGO_TARGET_DIR:-target}/release/bank-transfer}
[ -x "$bin" ] || { echo "no $bin: cargo build --release first" >&2; exit 2; }

if [ -z "${SCHEMATHESIS:-}" ]; then
  venv="$HOME/.cache/bank-transfer/schemathesis"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis>=4.32,<5'
  fi
  SCHEMATHESIS="$venv/bin/schemathesis"
fi
"$SCHEMATHESIS" --version

data=$(mktemp -d /tmp/bt-contract.XXXXXX)
# Fixed ports below Linux's ephemeral range (32768-60999): no outgoing connection of this
# machine can be holding them when the stack binds.
b1=http://127.0.0.1:26181
b2=http://127.0.0.1:26182
# Time compressed as in the tests: retries 1 s apart, reconciliation every 2 s.
export BANK_TRANSFER_MESSAGE_DELAY_LEVEL="$(printf '1s %.0s' $(seq 18))"
export BANK_TRANSFER_TRANSACTION_TIMEOUT=3000 BANK_TRANSFER_TRANSACTION_CHECK_INTERVAL=5000
export BANK1_RECONCILE_INTERVAL=2s BANK1_RECONCILE_GRACE=2s BANK2_RECONCILE_INTERVAL=2s BANK2_RECONCILE_GRACE=2s
"$bin" --data-dir "$data" --namesrv-port 19876 --broker-port 20911 \
  --bank1-listen 127.0.0.1:26181 --bank2-listen 127.0.0.1:26182 --console-listen 127.0.0.1:26180 \
  >"$data/stack.log" 2>&1 &
pid=$!
stop() {
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap stop EXIT

for _ in $(seq 1 240); do
  curl -sf "$b1/health" >/dev/null 2>&1 && curl -sf "$b2/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/stack.log"; exit 1; }
  sleep 0.5
done
curl -sf "$b1/health" && curl -sf "$b2/health" && echo
set -a
# shellcheck disable=SC1091
. "$data/secrets/secrets.env"
set +a

# One worker: hypothesis parses sources with `ast` from its threads, and CPython 3.11's parser
# is not thread-safe ("AST constructor recursion depth mismatch", fixed in later releases).
fuzz() { # bank url, admin token, feed token
  echo "== schemathesis: $1 ($2)"
  ADMIN_TOKEN=$3 FEED_TOKEN=$4 "$SCHEMATHESIS" --config-file "$root/tests/contract/schemathesis.toml" run \
    "$2/api-docs/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${CONTRACT_MAX_EXAMPLES:-200}" --seed 1 --no-color --workers 1
}
status=0
fuzz bank1 "$b1" "$BANK1_ADMIN_TOKEN" "$BANK1_FEED_TOKEN" || status=1
fuzz bank2 "$b2" "$BANK2_ADMIN_TOKEN" "$BANK2_FEED_TOKEN" || status=1

echo "== after the fuzzing: faults off, consumer on, then conservation"
json=(-H 'Content-Type: application/json')
curl -sf -X PUT "$b1/admin/faults" -H "Authorization: Bearer $BANK1_ADMIN_TOKEN" "${json[@]}" \
  -d '{"local_tx_fail_at_least":null,"unknown_at_least":null,"lose_message_at_least":null}' && echo
curl -sf -X PUT "$b2/admin/faults" -H "Authorization: Bearer $BANK2_ADMIN_TOKEN" "${json[@]}" \
  -d '{"consume_fail_at_least":null,"lose_refund_at_least":null}' && echo
curl -sf -X POST "$b2/admin/consumer/resume" -H "Authorization: Bearer $BANK2_ADMIN_TOKEN" && echo
python3 - "$b1" "$b2" <<'PY' || status=1
import json, sys, time, urllib.request
b1, b2 = sys.argv[1:3]
def balance(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        whole, _, cents = json.load(r)["balance"].partition(".")
        return int(whole) * 100 + int(cents or 0)
def counted(url, name, having=""):
    """The sum of a counter's series (those whose labels include `having`)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    series = [l for l in lines if l.split("{")[0].split(" ")[0] == name and having in l]
    return round(sum(float(l.rsplit(" ", 1)[1]) for l in series))
# Settled: every debit bank1 committed is credited or rejected at bank2, and every rejection
# is refunded at bank1. Then the two accounts must hold the seed's 1000.00 between them.
deadline = time.monotonic() + 300
while True:
    committed = counted(b1, "bank1_local_transactions_total", 'outcome="committed"')
    refunded = counted(b1, "bank1_refunds_total", 'outcome="refunded"')
    credited, rejected = counted(b2, "bank2_credits_total"), counted(b2, "bank2_rejections_total")
    a, b = balance(f"{b1}/api/accounts/1"), balance(f"{b2}/api/accounts/2")
    settled = committed == credited + rejected and refunded == rejected
    if settled or time.monotonic() > deadline:
        break
    time.sleep(1)
print(f"the fuzzing moved: bank1 committed {committed}, refunded {refunded}; bank2 credited {credited}, "
      f"rejected {rejected}; settled: {settled}")
if not settled or a + b != 100000:
    print(f"NOT conserved: bank1 account 1 {a} + bank2 account 2 {b} minor units (want 100000)", file=sys.stderr)
    sys.exit(1)
print(f"conserved: bank1 account 1 {a / 100:.2f} + bank2 account 2 {b / 100:.2f} = 1000.00")
PY
exit $status
