#!/usr/bin/env bash
# tests/compose.sh — `docker compose up` runs the full demo: the compose file, the image and
# the services, checked end to end from the host the way a person would use them.
#
# Offline by design (no image can be pulled where CI runs):
#   * the runtime base image is a Debian bookworm rootfs made here with debootstrap, from the
#     machine's own apt mirror, and `docker import`ed (cached: bank-transfer-base:bookworm);
#   * MariaDB (Debian's mariadb-server, same way; cached) STANDS IN for the official mysql:8.0
#     image, behind a small entry point with the official image's contract
#     (docker/mariadb/) — the compose file is run unchanged with MYSQL_IMAGE pointing at it;
#   * the app image is the Dockerfile's `prebuilt` target, fed with the release binaries the
#     workspace build already made (no second compile).
# Then: compose up (project bt-ci), wait for health, a transfer is credited, mqadmin finds its
# message by key, a bank2 fault makes the broker redeliver (attempts visible on
# /api/credits), lifting it credits once, a message left failing reaches the DLQ and the DLQ
# redrive credits it, a lost message is credited by reconciliation, a transfer to an unknown
# receiver is refunded to the sender, operator endpoints refuse a request without the token;
# always `compose down -v` at the end.
#
# Exits 0 with a SKIP line when there is no Docker engine or no Compose.
#
# Environment:
#   BANK_TRANSFER_BIN_DIR  release binaries (default ${CARGO_TARGET_DIR:-<repo>/target}/release)
#   BT_REQUIRE_MQADMIN=1   fail when mqadmin is not among them (default: warn, skip its checks)
#   BT_REBUILD_BASE=1      rebuild the cached base and MariaDB images
#   BT_DEBIAN_MIRROR       Debian mirror for debootstrap (default: from /etc/apt sources)
#   BT_KEEP=1              leave the stack running at the end (for a look; down it yourself:
#                          docker compose -p bt-ci down -v)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

t_start=$SECONDS
phase_name=""
phase_t=$SECONDS
timings=()
phase() { # phase NAME: closes the running phase (its time goes to the summary), opens NAME
  if [ -n "$phase_name" ]; then timings+=("$(printf '%-28s %4ss' "$phase_name" $((SECONDS - phase_t)))"); fi
  phase_name=$1
  phase_t=$SECONDS
  [ -n "$1" ] && printf '\n== %s (%s, +%ss)\n' "$1" "$(date -u +%H:%M:%S)" $((SECONDS - t_start))
  return 0
}
passed=0
ok() { passed=$((passed + 1)); printf '  ok   %s\n' "$*"; }
die() { printf '  FAIL %s\n' "$*" >&2; exit 1; }
note() { printf '  ..   %s\n' "$*"; }

# --- preconditions ------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  echo "SKIP tests/compose.sh: no Docker engine here (docker info failed)"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  echo "SKIP tests/compose.sh: Docker runs but neither 'docker compose' nor 'docker-compose' is installed"
  exit 0
fi
for tool in curl jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
  fi
done

project=bt-ci
base_image=bank-transfer-base:bookworm
mariadb_rootfs_image=bank-transfer-mariadb-rootfs:bookworm
mariadb_image=bank-transfer-mariadb:bookworm
app_image=bank-transfer:ci
bin_dir=${BANK_TRANSFER_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/bt-compose.XXXXXX")
compose() { "${compose_cmd[@]}" -p "$project" -f "$root/docker-compose.yml" --project-directory "$root" "$@"; }

stack_up=0
cleanup() {
  local rc=$?
  set +e
  if [ "$stack_up" = 1 ]; then
    if [ "$rc" != 0 ]; then
      local logs
      logs="${TMPDIR:-/var/tmp}/bt-compose-failure-$(date -u +%Y%m%dT%H%M%S).log"
      compose logs --no-color >"$logs" 2>&1
      echo
      echo "== failure: compose ps, bank1/bank2 log tails (all logs: $logs)"
      compose ps
      compose logs --no-color --tail=40 bank1 bank2
    fi
    if [ "${BT_KEEP:-0}" = 1 ]; then
      echo "BT_KEEP=1: the stack is still up (${compose_cmd[*]} -p $project down -v)"
    else
      echo
      echo "== compose down -v"
      compose down -v --remove-orphans >/dev/null 2>&1 || compose down -v
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

echo "compose: ${compose_cmd[*]} ($("${compose_cmd[@]}" version --short 2>/dev/null || true)), engine $(docker version -f '{{.Server.Version}}')"
echo "binaries: $bin_dir"
for b in bank-transfer bank1 bank2; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing: build the workspace first (cargo build --release --workspace)"
done
have_mqadmin=0
if [ -x "$bin_dir/mqadmin" ]; then
  have_mqadmin=1
elif [ "${BT_REQUIRE_MQADMIN:-0}" = 1 ]; then
  die "$bin_dir/mqadmin is missing (BT_REQUIRE_MQADMIN=1)"
else
  echo "WARNING: $bin_dir/mqadmin is missing: the image goes without it, topic-init lets the broker"
  echo "         auto-create topic_txmsg, and the mqadmin checks are skipped"
fi

# --- offline base images ------------------------------------------------------------------
# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list entries of its
# own release); debootstrap installs bookworm from it.
debian_mirror() {
  if [ -n "${BT_DEBIAN_MIRROR:-}" ]; then echo "$BT_DEBIAN_MIRROR"; return; fi
  local codename f m
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 1
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v want="$codename" 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; suites = ""; off = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/)   { types = $i }
          if ($i ~ /^URIs:/)    { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/)  { suites = " " $i " " }
          if ($i ~ /^Enabled:[ \t]*no/) { off = 1 }
        }
        if (!off && types ~ /[ \t]deb([ \t]|$)/ && index(suites, " " want " ")) { split(uris, u, " "); print u[1]; exit }
      }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -E 's/\[[^]]*\]//' | awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }' || true)
  [ -n "$m" ] && echo "$m"
}

# rootfs_image NAME "PACKAGES" [EXTRA_TRIM]: a debootstrap'ed bookworm with PACKAGES, imported
# as NAME; kept while its label matches this recipe.
rootfs_pids=()
rootfs_image_start() {
  local name=$1 packages=$2 trim=${3:-} key have dir
  key=$(printf 'v1 bookworm minbase %s | %s' "$packages" "$trim" | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{ index .Config.Labels "bank-transfer.rootfs" }}' "$name" 2>/dev/null || true)
  if [ "$have" = "$key" ] && [ "${BT_REBUILD_BASE:-0}" != 1 ]; then
    note "$name: cached (recipe $key)"
    return 0
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local mirror
  mirror=$(debian_mirror) || true
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt sources (set BT_DEBIAN_MIRROR)"
  dir="$work/rootfs-${name%%:*}"
  note "$name: debootstrap bookworm from $mirror with: $packages (log: ${dir}.log)"
  (
    set -e
    debootstrap --variant=minbase --include="$packages" bookworm "$dir" "$mirror" >"$dir.log" 2>&1
    # What an image does not need: package caches and lists, docs, locales; the package's own
    # data dir (the entry point initialises its own). Then the image, labelled with the recipe.
    rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
      "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* "$dir"/var/log/*.log \
      "$dir"/tmp/* ${trim:+"$dir"/$trim}
    old=$(docker image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)
    tar --numeric-owner -C "$dir" -c . | docker import \
      --change "LABEL bank-transfer.rootfs=$key" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
      --change 'CMD ["bash"]' - "$name" >/dev/null
    rm -rf "$dir"
    if [ -n "$old" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
  ) &
  rootfs_pids+=("$!:$name:$dir.log")
}

phase "base images (offline)"
rootfs_image_start "$base_image" "ca-certificates,curl"
rootfs_image_start "$mariadb_rootfs_image" "mariadb-server,mariadb-client" "var/lib/mysql/*"
for entry in ${rootfs_pids[@]+"${rootfs_pids[@]}"}; do
  pid=${entry%%:*} rest=${entry#*:}
  if ! wait "$pid"; then
    tail -20 "${rest#*:}" >&2 || true
    die "building ${rest%%:*} failed"
  fi
  note "${rest%%:*}: built"
done
# build_tag TAG ARGS…: docker build -t TAG ARGS…, then drops the image TAG named before if it
# changed (repeated runs would otherwise pile up untagged app images).
build_tag() {
  local tag=$1 old
  shift
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  docker build -q -t "$tag" "$@" >/dev/null
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}
echo "  NOTE: MariaDB ($mariadb_image) stands in for the official mysql:8.0 image here (no registry)"
build_tag "$mariadb_image" --build-arg ROOTFS_IMAGE="$mariadb_rootfs_image" "$root/docker/mariadb"
ok "base $base_image and MySQL stand-in $mariadb_image ready"

# --- the app image from the prebuilt binaries ---------------------------------------------
phase "app image (prebuilt target)"
mkdir -p "$work/context/dist"
cp -r "$root/docker" "$work/context/docker"
for b in bank-transfer bank1 bank2 mqadmin; do
  [ -x "$bin_dir/$b" ] && cp "$bin_dir/$b" "$work/context/dist/"
done
# shellcheck disable=SC2012 # a listing for the log
ls -l "$work/context/dist" | sed 's/^/  /'
build_tag "$app_image" -f "$root/Dockerfile" --target prebuilt --build-arg BASE_IMAGE="$base_image" "$work/context"
rm -rf "$work/context"
ok "app image $app_image built (target prebuilt)"

# --- compose up ---------------------------------------------------------------------------
phase "compose config + up"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export BANK_TRANSFER_IMAGE=$app_image
export MYSQL_IMAGE=$mariadb_image
# A compressed retry ladder (every level 1 s), so the fault checks below take seconds; the
# other settings are the compose file's demo defaults. Host ports are picked free, so a stack
# on the default ports is no obstacle.
BANK_TRANSFER_MESSAGE_DELAY_LEVEL=$(printf '1s %.0s' {1..18})
export BANK_TRANSFER_MESSAGE_DELAY_LEVEL=${BANK_TRANSFER_MESSAGE_DELAY_LEVEL% }
# bank2 reconciles only when asked (POST /admin/reconcile), so each credit path below (MQ,
# DLQ redrive, reconciliation) is the one that credits its transfer.
export BANK2_RECONCILE_INTERVAL=0
export PUBLISH_ADDRESS=127.0.0.1
# Operator tokens of this run (the compose file's demo values are overridden the way a real
# deployment would): every /admin call below presents them.
BANK1_ADMIN_TOKEN=ci-bank1-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
BANK2_ADMIN_TOKEN=ci-bank2-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export BANK1_ADMIN_TOKEN BANK2_ADMIN_TOKEN
NAMESRV_HOST_PORT=$(free_port) BROKER_HOST_PORT=$(free_port)
BANK1_HOST_PORT=$(free_port) BANK2_HOST_PORT=$(free_port) CONSOLE_HOST_PORT=$(free_port)
export NAMESRV_HOST_PORT BROKER_HOST_PORT BANK1_HOST_PORT BANK2_HOST_PORT CONSOLE_HOST_PORT
unset BANK1_LOCAL_TX_FAIL_AT_LEAST BANK1_UNKNOWN_AT_LEAST BANK1_LOSE_MESSAGE_AT_LEAST BANK2_CONSUME_FAIL_AT_LEAST
compose config -q
ok "compose config is valid"
compose down -v --remove-orphans >/dev/null 2>&1 || true # a stack left over by an earlier run
stack_up=1
compose up -d --no-build
up_at=$SECONDS

b1="http://127.0.0.1:$BANK1_HOST_PORT"
b2="http://127.0.0.1:$BANK2_HOST_PORT"
console="http://127.0.0.1:$CONSOLE_HOST_PORT"
wait_for() { # wait_for SECONDS WHAT CMD…: polls CMD until it succeeds or time is up
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what: not within ${limit}s"
    sleep 0.5
  done
}
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$1")")" = healthy ]; }
for s in namesrv broker mysql bank1 bank2 console; do
  wait_for 240 "$s healthy" healthy "$s"
done
ok "namesrv, broker, mysql, bank1, bank2, console healthy ($((SECONDS - up_at))s after up)"
topic_init=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(compose ps -a -q topic-init 2>/dev/null || compose ps -q topic-init)")
[ "$topic_init" = "exited 0" ] || die "topic-init: $topic_init"
compose logs --no-color topic-init | grep 'topic-init:' | sed 's/^/  /' || true
ok "topic-init completed"
curl -fsS "$b1/health" >/dev/null && curl -fsS "$b2/health" >/dev/null
ok "GET /health 200 on the published ports $BANK1_HOST_PORT, $BANK2_HOST_PORT"

# --- a transfer, end to end ---------------------------------------------------------------
phase "transfer credited"
call() { # call WANT_STATUS METHOD URL [JSON] → prints the body; dies with it on another status
  # (/admin URLs get the bank's operator token)
  local want=$1 method=$2 url=$3 out code auth=()
  case $url in
    "$b1"/admin/*) auth=(-H "Authorization: Bearer $BANK1_ADMIN_TOKEN") ;;
    "$b2"/admin/*) auth=(-H "Authorization: Bearer $BANK2_ADMIN_TOKEN") ;;
  esac
  out=$(curl -sS -w '\n%{http_code}' -X "$method" "${auth[@]}" "$url" ${4:+-H 'Content-Type: application/json' -d "$4"})
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [ "$code" = "$want" ] || die "$method $url ${4:-}: HTTP $code $out"
  printf '%s\n' "$out"
}
transfer() { # transfer AMOUNT → prints tx_no; checks 201 COMMITTED
  local out
  out=$(call 201 POST "$b1/api/transfers" "{\"from_account\":\"1\",\"to_account\":\"2\",\"amount\":\"$1\"}")
  [ "$(jq -r .status <<<"$out")" = COMMITTED ] || die "POST /api/transfers $1: $out"
  jq -r .tx_no <<<"$out"
}
fault() { call 200 PUT "$b2/admin/faults" "{\"consume_fail_at_least\":$1}" >/dev/null; }
credited() { [ "$(curl -fsS "$b2/api/credits/$1" | jq -r .credited)" = true ]; }
attempts_at_least() { [ "$(curl -fsS "$b2/api/credits/$1" | jq '.attempts | length')" -ge "$2" ]; }
balance() { curl -fsS "$1/api/accounts/$2" | jq -r .balance; }

t=$SECONDS
tx1=$(transfer 100.00)
ok "POST /api/transfers 100.00 → 201 COMMITTED, tx_no $tx1"
wait_for 90 "credit of $tx1" credited "$tx1"
source=$(curl -fsS "$b2/api/credits/$tx1" | jq -r .source)
[ "$source" = MQ ] || die "$tx1 credited from $source, want MQ"
ok "bank2 credited $tx1 from the message ($((SECONDS - t))s after the POST)"
[ "$(balance "$b1" 1)" = 900.00 ] || die "bank1 account 1: $(balance "$b1" 1), want 900.00"
[ "$(balance "$b2" 2)" = 100.00 ] || die "bank2 account 2: $(balance "$b2" 2), want 100.00"
ok "balances: bank1 account 1 900.00, bank2 account 2 100.00"

mq() { compose exec -T broker mqadmin "$@"; }
if [ "$have_mqadmin" = 1 ]; then
  # queryMsgByKey prints a header (#Message ID … #Keys) and one row per message, keys last.
  found_by_key() { mq queryMsgByKey -n namesrv:9876 -t "$1" -k "$2" 2>"$work/mq.err" | tee "$work/mq.out" | grep -v '^#' | grep -qF -- "$2"; }
  wait_for 30 "mqadmin queryMsgByKey topic_txmsg $tx1" found_by_key topic_txmsg "$tx1"
  sed 's/^/  | /' "$work/mq.out"
  ok "mqadmin queryMsgByKey -t topic_txmsg -k $tx1 finds the message"
fi

# --- bank2 fails: redeliveries, then lifting the fault credits once ------------------------
phase "fault: redelivery + lift"
fault '"50.00"'
ok "PUT bank2 /admin/faults consume_fail_at_least 50.00"
t=$SECONDS
tx2=$(transfer 60.00)
wait_for 60 "2 failed attempts of $tx2" attempts_at_least "$tx2" 2
curl -fsS "$b2/api/credits/$tx2" | jq -c '{credited, attempts: [.attempts[] | del(.error)]}' | sed 's/^/  | /'
! credited "$tx2" || die "$tx2 was credited although bank2 fails amounts ≥ 50.00"
ok "60.00 ($tx2): ≥ 2 failed attempts on /api/credits ($((SECONDS - t))s), not credited"
fault null
wait_for 60 "credit of $tx2 after the fault is lifted" credited "$tx2"
[ "$(balance "$b2" 2)" = 160.00 ] || die "bank2 account 2: $(balance "$b2" 2), want 160.00"
[ "$(balance "$b1" 1)" = 840.00 ] || die "bank1 account 1: $(balance "$b1" 1), want 840.00"
ok "fault lifted: $tx2 credited once (bank2 160.00, bank1 840.00)"

if [ "$have_mqadmin" = 1 ]; then
  phase "fault: DLQ + redrive"
  fault '"50.00"'
  t=$SECONDS
  tx3=$(transfer 70.00)
  wait_for 150 "$tx3 in %DLQ%consumer_group_txmsg_bank2" found_by_key '%DLQ%consumer_group_txmsg_bank2' "$tx3"
  sed 's/^/  | /' "$work/mq.out"
  n=$(curl -fsS "$b2/api/credits/$tx3" | jq '.attempts | length')
  ! credited "$tx3" || die "$tx3 was credited although bank2 fails amounts ≥ 50.00"
  ok "70.00 ($tx3): $n failed attempts, then mqadmin finds it in %DLQ%consumer_group_txmsg_bank2 ($((SECONDS - t))s)"
  fault null
  call 200 POST "$b2/admin/dlq/redrive" | jq -c '{dlq, scanned, credited}' | sed 's/^/  | /'
  credited "$tx3" || die "$tx3 not credited by POST /admin/dlq/redrive"
  source=$(curl -fsS "$b2/api/credits/$tx3" | jq -r .source)
  [ "$source" = DLQ_REDRIVE ] || die "$tx3 credited from $source, want DLQ_REDRIVE"
  [ "$(balance "$b2" 2)" = 230.00 ] || die "bank2 account 2: $(balance "$b2" 2), want 230.00"
  [ "$(balance "$b1" 1)" = 770.00 ] || die "bank1 account 1: $(balance "$b1" 1), want 770.00"
  ok "fault lifted, POST /admin/dlq/redrive: $tx3 credited from the DLQ (bank1 770.00, bank2 230.00)"
fi

# --- a lost message: bank1 commits but rolls the message back; reconciliation credits it -----
phase "lost message + reconcile"
call 200 PUT "$b1/admin/faults" '{"lose_message_at_least":"80.00"}' >/dev/null
tx4=$(transfer 80.00)
call 200 PUT "$b1/admin/faults" '{"lose_message_at_least":null}' >/dev/null
sleep 2 # what a delivery would have needed; none must come
! credited "$tx4" || die "$tx4 was credited although its message was rolled back"
reconciled() { call 200 POST "$b2/admin/reconcile?grace=0s" >/dev/null && credited "$1"; }
wait_for 60 "credit of $tx4 by POST /admin/reconcile" reconciled "$tx4"
source=$(curl -fsS "$b2/api/credits/$tx4" | jq -r .source)
[ "$source" = RECONCILE ] || die "$tx4 credited from $source, want RECONCILE"
want1=$([ "$have_mqadmin" = 1 ] && echo 690.00 || echo 760.00)
want2=$([ "$have_mqadmin" = 1 ] && echo 310.00 || echo 240.00)
[ "$(balance "$b1" 1)" = "$want1" ] || die "bank1 account 1: $(balance "$b1" 1), want $want1"
[ "$(balance "$b2" 2)" = "$want2" ] || die "bank2 account 2: $(balance "$b2" 2), want $want2"
ok "80.00 ($tx4) lost, then credited by POST /admin/reconcile (bank1 $want1 + bank2 $want2 = 1000.00)"

# --- a receiver bank2 does not have: rejected, the funds come back to the sender -----------
phase "unknown receiver: refund"
before=$(balance "$b1" 1)
out=$(call 201 POST "$b1/api/transfers" '{"from_account":"1","to_account":"999","amount":"5.00"}')
tx5=$(jq -r .tx_no <<<"$out")
[ "$(jq -r .status <<<"$out")" = COMMITTED ] || die "POST /api/transfers to 999: $out"
refunded() { [ "$(curl -fsS "$b1/api/transfers/$1" | jq -r .status)" = REFUNDED ]; }
wait_for 60 "refund of $tx5" refunded "$tx5"
curl -fsS "$b1/api/transfers/$tx5" | jq -c '{status, reason, refunded_at, refund_source}' | sed 's/^/  | /'
[ "$(curl -fsS "$b2/api/credits/$tx5" | jq -r .outcome)" = REJECTED ] || die "$tx5 is not REJECTED at bank2"
[ "$(balance "$b1" 1)" = "$before" ] || die "bank1 account 1: $(balance "$b1" 1), want $before after the refund"
ok "5.00 to account 999 ($tx5): REJECTED at bank2, REFUNDED at bank1, account 1 back to $before"

# --- the console sees both banks ----------------------------------------------------------
phase "console"
curl -fsS "$console/" | grep -q 'bank-transfer console' || die "the console's page at $console/"
money=$(curl -fsS "$console/live/money")
total=$(sed -n 's/.*id="total"[^>]*>\([0-9.]*\)<.*/\1/p' <<<"$money")
[ "$total" = 1000.00 ] || die "the console's conservation total is '$total', want 1000.00 (as seeded): $money"
curl -fsS "$console/live/transfers" | grep -q "data-tx=\"$tx5\"" || die "$tx5 is not in the console's transfer list"
curl -fsS "$console/transfers/$tx1" | grep -q 'data-step="CREDITED"' || die "$tx1's timeline has no CREDITED step"
ok "console at :$CONSOLE_HOST_PORT: conservation total $total, $tx5 listed, $tx1's timeline ends CREDITED"

# --- operator endpoints need the token -----------------------------------------------------
phase "operator auth"
code=$(curl -s -o "$work/401.json" -w '%{http_code}' -X PUT "$b1/admin/faults" -H 'Content-Type: application/json' -d '{"unknown_at_least":"1.00"}')
[ "$code" = 401 ] || die "PUT bank1 /admin/faults without a token: HTTP $code"
[ "$(jq -r .error.code "$work/401.json")" = unauthorized ] || die "401 body: $(cat "$work/401.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$b2/admin/dlq/redrive" -H "Authorization: Bearer $BANK1_ADMIN_TOKEN")
[ "$code" = 401 ] || die "POST bank2 /admin/dlq/redrive with bank1's token: HTTP $code"
[ "$(call 200 GET "$b1/admin/faults" | jq -r .unknown_at_least)" = null ] || die "the refused PUT changed a fault"
ok "no token → 401 {\"error\":{\"code\":\"unauthorized\"}}, another bank's token → 401, nothing changed"

# --- summary ------------------------------------------------------------------------------
phase ""
echo
echo "== timings"
printf '  %s\n' "${timings[@]}"
printf '  %-28s %4ss\n' "total" $((SECONDS - t_start))
echo "== image sizes"
for img in "$base_image" "$mariadb_image" "$app_image"; do
  printf '  %-40s %6s MB\n' "$img" $(($(docker image inspect -f '{{.Size}}' "$img") / 1000000))
done
[ "$have_mqadmin" = 1 ] || echo "  (mqadmin was not in $bin_dir: its checks were skipped)"
echo
echo "compose: $passed passed, 0 failed"
