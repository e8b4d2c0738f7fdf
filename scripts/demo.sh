#!/usr/bin/env bash
# make demo: start a primary and a mirror on loopback with the shipped configs, create a
# volume, write through the host adaptors, watch the holding pen refuse a bad write, read
# both sides, check consistency, show the web console (DEMO_HOLD=S keeps the pair up S seconds
# to open it), stop both daemons; then the same pair in async mode, with its cycles, the
# emulated link and a gold copy held through a resync; then three sites, A -sync-> B -async->
# C (configs/three-site). Exits 0 only if everything held.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DAEMON=$BUILD/daemon/simarrayd
CTL=$BUILD/tools/simarrayctl
DIR=demo-data
PRIMARY_ADMIN=127.0.0.1:7100
MIRROR_ADMIN=127.0.0.1:7200
HA0=127.0.0.1:7101
HA1=127.0.0.1:7102
MIRROR_HA=127.0.0.1:7201

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT

failures=0
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
bad() { printf '   FAILED: %s\n' "$*"; failures=$((failures + 1)); }

start() {  # name config
  local name=$1 config=$2
  rm -f "$DIR/$name.ready"
  "$DAEMON" --config "$config" --data-dir "$DIR/$name" --ready-file "$DIR/$name.ready" \
    >"$DIR/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    [ -f "$DIR/$name.ready" ] && { ok "$name is serving: $(cat "$DIR/$name.ready")"; return 0; }
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  bad "$name did not start; its log:"; cat "$DIR/$name.log"; exit 1
}

rm -rf "$DIR" && mkdir -p "$DIR/primary" "$DIR/mirror"
step "Share a peer secret, start the mirror, then the primary (configs/*.toml)"
secret=$(openssl rand -hex 32)
(umask 077 && echo "$secret" >"$DIR/primary/peer.secret" && echo "$secret" >"$DIR/mirror/peer.secret")
ok "the same random peer secret is in each data_dir; it is never sent, only proved"
start mirror configs/mirror.toml
start primary configs/primary.toml
# Each daemon made its own admin token in its data_dir; simarrayctl sends it.
PRIMARY_ADMIN="$PRIMARY_ADMIN --token-file $DIR/primary/admin.token"
MIRROR_ADMIN="$MIRROR_ADMIN --token-file $DIR/mirror/admin.token"
for _ in $(seq 50); do
  "$CTL" --admin $PRIMARY_ADMIN --json status | grep -q '"state": *"up"' && break
  sleep 0.1
done
if "$CTL" --admin 127.0.0.1:7100 status >"$DIR/no-token.txt" 2>&1; then
  bad "an admin call without the token was accepted"
else
  ok "an admin call without the token is refused: $(head -1 "$DIR/no-token.txt")"
fi

step "Create volume 'demo' (64 MiB) on the primary; its twin appears on the mirror"
"$CTL" --admin $PRIMARY_ADMIN volume create demo 64M || bad "volume create"
"$CTL" --admin $MIRROR_ADMIN volume list | grep -q demo && ok "the mirror has the twin" \
  || bad "no twin on the mirror"

step "A single-track write: 4 KiB of 0xab at 8K through host adaptor ha0 (sync: acked after the mirror acked)"
"$CTL" write --host $HA0 demo 8K --pattern 0xab --length 4K || bad "single-track write"

step "A streamed write of 300 KiB over 6 tracks at an unaligned offset through ha1"
head -c 300K /dev/urandom >"$DIR/payload.bin"
"$CTL" write --host $HA1 demo 100000 --file "$DIR/payload.bin" --stream --chunk 64K \
  || bad "streamed write"

step "A write whose CRC-32C is wrong: validated in cache, refused, its mirror requests deleted"
if "$CTL" write --host $HA0 demo 8K --pattern 0xee --length 200K --crc32c 0xdeadbeef; then
  bad "the bad write was accepted"
else
  ok "refused, as it must be"
fi

step "Read back from both sides"
"$CTL" read --host $HA0 demo 100000 300K --out "$DIR/primary.bin" || bad "read primary"
"$CTL" read --host $MIRROR_HA demo 100000 300K --out "$DIR/mirror.bin" || bad "read mirror"
cmp -s "$DIR/payload.bin" "$DIR/primary.bin" && ok "primary holds the streamed bytes" \
  || bad "primary differs from what was written"
cmp -s "$DIR/payload.bin" "$DIR/mirror.bin" && ok "mirror holds the streamed bytes" \
  || bad "mirror differs from what was written"
"$CTL" read --host $MIRROR_HA demo 8K 4K --out "$DIR/track.bin" || bad "read mirror track"
head -c 4096 /dev/zero | tr '\0' '\253' | cmp -s - "$DIR/track.bin" \
  && ok "the refused write left the mirror's 0xab bytes untouched" || bad "mirror track changed"

step "Check mirror consistency (per-track digests of both sides, cache over disk)"
"$CTL" --admin $PRIMARY_ADMIN consistency demo --wait 5000 || bad "not consistent"

step "Status of the primary: pens, queue, link"
"$CTL" --admin $PRIMARY_ADMIN status || bad "status"

step "The web console on the primary's HTTP port (docs/console.md)"
page=$(curl -s --max-time 5 http://127.0.0.1:7104/)
state=$(curl -s --max-time 5 http://127.0.0.1:7104/api/status | grep -o '"pair_state":"[^"]*"')
if [[ $page == *"simarray console"* && $state == '"pair_state":"Synchronized"' ]]; then
  ok "http://127.0.0.1:7104/ serves the console; its feed says $state"
else
  bad "the console did not answer (page ${#page} bytes, status $state)"
fi
if [ -n "${DEMO_HOLD:-}" ]; then
  ok "holding the pair for $DEMO_HOLD s: open http://127.0.0.1:7104/ in a browser"
  sleep "$DEMO_HOLD"
else
  ok "DEMO_HOLD=300 make demo keeps this pair up 300 s to look at it in a browser"
fi

step "Stop both daemons"
cleanup
pids=()

step "Async mode: the same pair with mode = \"async\" and cycles of 500 ms (fresh data_dirs)"
mkdir -p "$DIR/primary-async" "$DIR/mirror-async"
for side in primary mirror; do
  sed -e 's/^mode = "sync"/mode = "async"/' -e 's/^cycle_ms = 1000/cycle_ms = 500/' \
    "configs/$side.toml" >"$DIR/$side-async.toml"
  (umask 077 && echo "$secret" >"$DIR/$side-async/peer.secret")
done
start mirror-async "$DIR/mirror-async.toml"
start primary-async "$DIR/primary-async.toml"
PRIMARY_ADMIN="127.0.0.1:7100 --token-file $DIR/primary-async/admin.token"
MIRROR_ADMIN="127.0.0.1:7200 --token-file $DIR/mirror-async/admin.token"
wait_state() {  # state: waits up to 10 s for the primary's pair state
  for _ in $(seq 100); do
    "$CTL" --admin $PRIMARY_ADMIN --json status | grep -q "\"pair_state\": *\"$1\"" && return 0
    sleep 0.1
  done
  return 1
}
"$CTL" --admin $PRIMARY_ADMIN volume create demo 64M || bad "volume create (async)"
wait_state Consistent && ok "the pair is Consistent: cycles flow" || bad "the async pair never became Consistent"

step "20 writes to one track inside a cycle: acked after the local commit, shipped once"
for i in $(seq 20); do
  "$CTL" write --host $HA0 demo $(( (i % 4) * 4096 )) --pattern $i --length 4K >/dev/null \
    || bad "async write $i"
done
"$CTL" write --host $HA1 demo 1M --file "$DIR/payload.bin" --stream --chunk 64K || bad "async stream"
"$CTL" --admin $PRIMARY_ADMIN consistency demo --wait 5000 || bad "async pair not consistent"
"$CTL" --admin $PRIMARY_ADMIN status | grep -A5 '^cycles:' || bad "status shows no cycles"
"$CTL" --admin $MIRROR_ADMIN status | grep '^cycles:' || bad "the mirror shows no cycles"

step "The link as one between sites: 20 ms each way, 100 Mbit/s (docs/link-emulation.md)"
"$CTL" --admin $PRIMARY_ADMIN link emulate --latency-ms 20 --bandwidth 100Mbit \
  || bad "link emulate"
"$CTL" write --host $HA0 demo 8M --pattern 0x5a --length 4M --stream --chunk 128K >/dev/null \
  || bad "write over the emulated link"
"$CTL" --admin $PRIMARY_ADMIN consistency demo --wait 10000 \
  && ok "4 MiB crossed the emulated link; the mirror is consistent" || bad "not consistent"
"$CTL" --admin $PRIMARY_ADMIN status | grep -E '^  (emulated|records)' || bad "no emulation shown"

step "A link drop: the mirror keeps a gold copy of its last consistent image through the resync"
"$CTL" --admin $PRIMARY_ADMIN link emulate --latency-ms 20 --bandwidth 16Mbit >/dev/null \
  || bad "link emulate 16Mbit"
"$CTL" --admin $PRIMARY_ADMIN link suspend || bad "link suspend"
"$CTL" write --host $HA0 demo 16M --pattern 0x6b --length 4M --stream --chunk 128K >/dev/null \
  || bad "write while the link is down"
"$CTL" --admin $PRIMARY_ADMIN link resume || bad "link resume"
gold=""
for _ in $(seq 100); do  # the resync of 64 tracks takes about 2 s over 16 Mbit/s
  gold=$("$CTL" --admin $MIRROR_ADMIN status | grep '^  gold copy: *held') && break
  sleep 0.05
done
[ -n "$gold" ] && echo "$gold" && ok "the resync overwrites the mirror; its hosts and a failover see the gold image" \
  || bad "no gold copy was held during the resync"
wait_state Consistent && "$CTL" --admin $PRIMARY_ADMIN consistency demo --wait 10000 >/dev/null \
  || bad "not consistent after the resync"
"$CTL" --admin $MIRROR_ADMIN status | grep '^  gold copy: *none held' \
  && ok "a consistent cycle applied: the gold copy was dropped" || bad "the gold copy was not dropped"
"$CTL" --admin $PRIMARY_ADMIN link emulate --off || bad "link emulate --off"

step "Stop both async daemons"
cleanup
pids=()

step "Three sites: A -sync-> B -async-> C (configs/three-site/*.toml, docs/groups.md)"
for site in a b c; do
  mkdir -p "$DIR/site-$site"
  (umask 077 && echo "$secret" >"$DIR/site-$site/peer.secret")
done
start site-c configs/three-site/c.toml
start site-b configs/three-site/b.toml
start site-a configs/three-site/a.toml
A_ADMIN="127.0.0.1:7300 --token-file $DIR/site-a/admin.token"
B_ADMIN="127.0.0.1:7400 --token-file $DIR/site-b/admin.token"
C_ADMIN="127.0.0.1:7500 --token-file $DIR/site-c/admin.token"
"$CTL" --admin $A_ADMIN volume create site 64M --group hop1 || bad "volume create on A"
for _ in $(seq 50); do
  "$CTL" --admin $B_ADMIN volume list | grep -q site && break
  sleep 0.1
done
"$CTL" --admin $B_ADMIN volume pair site --group hop2 \
  && ok "B's twin is an R21: the target of hop1, the source of hop2" || bad "volume pair on B"
"$CTL" write --host 127.0.0.1:7301 site 0 --file "$DIR/payload.bin" --stream --chunk 64K \
  || bad "write on A"
"$CTL" --admin $A_ADMIN wait Synchronized --group hop1 --timeout 10 \
  && ok "hop1 (A to B) is Synchronized" || bad "hop1 never Synchronized"
"$CTL" --admin $B_ADMIN wait Consistent --group hop2 --timeout 10 \
  && ok "hop2 (B to C) is Consistent" || bad "hop2 never Consistent"
for _ in $(seq 100); do
  "$CTL" read --host 127.0.0.1:7501 site 0 300K --out "$DIR/site-c.bin" \
    && cmp -s "$DIR/payload.bin" "$DIR/site-c.bin" && break
  sleep 0.1
done
cmp -s "$DIR/payload.bin" "$DIR/site-c.bin" && ok "C holds what was written on A, two hops away" \
  || bad "C differs from what was written on A"
if "$CTL" write --host 127.0.0.1:7401 site 0 --pattern 0x11 --length 4K 2>/dev/null; then
  bad "B took a host write to the R21"
else
  ok "B refuses host writes to the R21 (the target of hop1)"
fi
for site in A B C; do
  printf '   %s:\n' "$site"
  admin_var="${site}_ADMIN"
  "$CTL" --admin ${!admin_var} group list | sed 's/^/     /' || bad "group list on $site"
done

step "Stop the three sites"
cleanup
pids=()
if [ $failures -eq 0 ]; then
  printf '\n\033[1mdemo: everything held.\033[0m Logs and data are in %s/.\n' "$DIR"
else
  printf '\n\033[1mdemo: %d step(s) failed.\033[0m Logs are in %s/.\n' "$failures" "$DIR"
  exit 1
fi
