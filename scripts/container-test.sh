#!/usr/bin/env bash
# make container-test: a pair of simarray containers on their own podman network, tested the
# way an operator would break it (docs/containers.md). Not part of `make test`: the image
# build alone takes several minutes on two cores the first time.
#
#  1. installs podman, runc, podman-compose and debootstrap if missing (as root);
#  2. builds a Debian 12 base image locally (debootstrap) unless one is given (BASE=...) or
#     already built; builds the simarray image from docker/Dockerfile;
#  3. starts the mirror and the primary as two containers on a private network, each with its
#     own data volume and its secrets mounted under /run/secrets, and a client container;
#  4. writes through gRPC, reads the writes back from the mirror;
#  5. disconnects the mirror from the network while writes go on, reconnects it, waits for
#     the resync and checks consistency;
#  6. kills the primary container with SIGKILL while writes go on, restarts it, and checks
#     that every acknowledged write is there, on the primary and on the mirror;
#  7. runs docker/compose.yaml with podman-compose: both services healthy, a write mirrored.
# Prints each step; exits 0 only if every check held. Leaves the images, removes the rest.
#
# Podman runs with runc and fixed ulimits (a containers.conf of the test's own): on some
# Debian 12 hosts podman's default runtime, crun, is refused (setrlimit, cgroup errors).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-localhost/simarray:test}"
BASE_IMAGE="${BASE:-}"
P=simarray-test  # prefix of every container, network and volume this test makes
WORK="$(mktemp -d /tmp/simarray-container-test.XXXXXX)"
VOLUME_NAME=vol0
TRACK=$((64 * 1024))
WRITE_LENGTH=8192

step() { printf '\n== %s\n' "$*"; }
# Podman logs that it cannot schedule health checks without systemd (the test runs them
# itself, `podman healthcheck run`); the run's own errors are shown if it fails.
quiet_run() { podman run "$@" 2>"$WORK/run.log" >/dev/null || { cat "$WORK/run.log"; return 1; }; }
fail() {
  printf 'container-test: FAILED: %s\n' "$*" >&2
  exit 1
}

"$ROOT/scripts/install-deps.sh" --only podman runc podman-compose debootstrap

cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

# Removes the pair's containers (with their anonymous volumes), network and volumes.
cleanup_leftovers() {
  podman rm -f -v -t 0 "$P-client" "$P-primary" "$P-mirror" >/dev/null 2>&1 || true
  podman network rm -f "$P-net" >/dev/null 2>&1 || true
  podman volume rm -f "$P-primary" "$P-mirror" >/dev/null 2>&1 || true
}
cleanup() {
  local rc=$?
  cleanup_leftovers
  if [ -n "${COMPOSE_UP:-}" ]; then
    compose down -v >/dev/null 2>&1 || true
    podman network rm -f "$P-compose_pair" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  [ $rc -eq 0 ] && printf '\ncontainer-test: every step held\n'
  exit $rc
}
trap cleanup EXIT
cleanup_leftovers

# --- 2. images --------------------------------------------------------------------------
# A minimal Debian 12 root made by debootstrap, trimmed of what an image does not need.
build_base_image() {
  local tree="$WORK/base-root"
  debootstrap --variant=minbase bookworm "$tree" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; fail "debootstrap of bookworm"; }
  rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/* \
    "$tree"/usr/share/doc/* "$tree"/usr/share/man/* "$tree"/usr/share/locale/*
  tar -C "$tree" -c . | podman import --message "debootstrap minbase bookworm" - "$1" >/dev/null
  rm -rf "$tree"
}

step "base image"
if [ -z "$BASE_IMAGE" ]; then
  BASE_IMAGE=localhost/simarray-base:bookworm
  if podman image exists "$BASE_IMAGE"; then
    echo "using $BASE_IMAGE, built before"
  elif timeout 60 podman pull -q docker.io/library/debian:12-slim >/dev/null 2>&1; then
    BASE_IMAGE=docker.io/library/debian:12-slim
    echo "using $BASE_IMAGE from the registry"
  else
    echo "no registry reachable: debootstrap minbase bookworm into $BASE_IMAGE (about a minute)"
    build_base_image "$BASE_IMAGE"
  fi
fi

step "build $IMAGE from docker/Dockerfile (BASE=$BASE_IMAGE)"
podman build --format docker --build-arg "BASE=$BASE_IMAGE" -f "$ROOT/docker/Dockerfile" \
  -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "image build"; }
echo "image size: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"
quiet_run --rm --entrypoint sh "$IMAGE" -c '
  for c in cc gcc g++ c++ clang cmake ninja; do
    if command -v "$c" >/dev/null; then echo "compiler in the image: $c" >&2; exit 1; fi
  done
  [ "$(id -u)" = 10001 ] || { echo "runs as uid $(id -u), expected 10001" >&2; exit 1; }
  if ls /run/secrets/* /var/lib/simarray/*.secret /var/lib/simarray/*.token >&2 2>/dev/null; then
    echo "a secret in the image" >&2; exit 1
  fi' || fail "the image holds a compiler or a secret, or runs as root"
echo "no compiler, no secret, runs as uid 10001"

# --- 3. the pair --------------------------------------------------------------------------
step "secrets: one peer secret, an admin token per daemon (uid 10001, mode 0400)"
SECRETS="$WORK/secrets"
mkdir -p "$SECRETS"
openssl rand -hex 32 >"$SECRETS/peer.secret"
openssl rand -hex 32 >"$SECRETS/primary.token"
openssl rand -hex 32 >"$SECRETS/mirror.token"
chown 10001:10001 "$SECRETS"/*
chmod 0400 "$SECRETS"/*

step "network $P-net, a data volume per daemon, the mirror and the primary"
# Fixed addresses, and the names in each container's /etc/hosts: podman's DNS (aardvark-dns
# 1.4) was seen to stop answering for seconds after a network disconnect or connect, which
# would test the DNS server rather than the pair. The daemons still dial each other by name.
SUBNET=10.89.77
podman network create --subnet "$SUBNET.0/24" "$P-net" >/dev/null
declare -A IP=([primary]=$SUBNET.10 [mirror]=$SUBNET.11 [client]=$SUBNET.12)
HOSTS=(--add-host "primary:${IP[primary]}" --add-host "mirror:${IP[mirror]}")
podman volume create "$P-primary" >/dev/null
podman volume create "$P-mirror" >/dev/null
# Points the name "mirror" at ${IP[mirror]} in CONTAINER's /etc/hosts (a bind mount: written
# in place).
hosts_name_mirror() {  # CONTAINER
  podman exec -u root "$P-$1" sh -c "sed 's/^[0-9.]*[[:space:]]*mirror\$/${IP[mirror]} mirror/' \
    /etc/hosts >/tmp/hosts && cat /tmp/hosts >/etc/hosts"
}
start_daemon() {  # ROLE
  quiet_run -d --name "$P-$1" --hostname "$1" --network "$P-net" --ip "${IP[$1]}" "${HOSTS[@]}" \
    -v "$P-$1:/var/lib/simarray" \
    -v "$SECRETS/peer.secret:/run/secrets/peer.secret:ro" \
    -v "$SECRETS/$1.token:/run/secrets/admin.token:ro" \
    "$IMAGE" --config "/etc/simarray/$1.toml"
}
start_daemon mirror
start_daemon primary
# The client: the same image, simarrayctl only, with both admin tokens.
quiet_run -d --name "$P-client" --network "$P-net" --ip "${IP[client]}" "${HOSTS[@]}" \
  --entrypoint sleep \
  -v "$SECRETS/primary.token:/run/secrets/primary.token:ro" \
  -v "$SECRETS/mirror.token:/run/secrets/mirror.token:ro" \
  "$IMAGE" infinity

ctl() { podman exec "$P-client" simarrayctl "$@"; }
on_primary() { ctl --admin primary:7100 --token-file /run/secrets/primary.token "$@"; }
on_mirror() { ctl --admin mirror:7100 --token-file /run/secrets/mirror.token "$@"; }

wait_healthy() {  # CONTAINER
  for _ in $(seq 1 60); do
    [ "$(podman healthcheck run "$1" >/dev/null 2>&1 && echo ok)" = ok ] && return 0
    sleep 1
  done
  podman logs --tail 30 "$1"
  fail "$1 not healthy after 60 s"
}
# Waits until the client reaches ADDR (a daemon port by name). A container restarted, or
# another one reconnected, was seen unreachable from its neighbours for up to a minute on the
# test machines (their network stack's neighbour entries); the time it took is printed.
wait_reachable() {  # ADDR
  local start=$SECONDS
  until ctl --timeout-ms 2000 health "$1" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt 120 ] || fail "$1 unreachable from the client for 120 s"
    sleep 1
  done
  [ $((SECONDS - start)) -eq 0 ] || echo "($1 was unreachable from the client for $((SECONDS - start)) s)"
}
wait_state() {  # STATE [TIMEOUT_S]
  on_primary wait "$1" --timeout "${2:-120}" >/dev/null ||
    { on_primary status; fail "the pair did not reach $1"; }
}
wait_healthy "$P-mirror"
wait_healthy "$P-primary"
echo "both healthy (simarrayctl health, the image's HEALTHCHECK)"
wait_state Synchronized 60
on_primary volume create "$VOLUME_NAME" 64M
echo "pair Synchronized, $VOLUME_NAME created on both sides"

# --- 4. writes -----------------------------------------------------------------------------
# Write i puts WRITE_LENGTH bytes of byte (i % 251 + 1) at track i; the writer logs
# "i crc32c" for every write the array acknowledged, to $WORK/acked.
ACKED="$WORK/acked"
: >"$ACKED"
write_one() {  # I
  local out
  out=$(on_primary --json write --host primary:7101 "$VOLUME_NAME" $(($1 * TRACK)) \
    --pattern $(($1 % 251 + 1)) --length "$WRITE_LENGTH" 2>/dev/null) || return 1
  echo "$1 $(sed -n 's/.*"crc32c":\([0-9]*\).*/\1/p' <<<"$out")" >>"$ACKED"
}
# Writes FIRST..LAST one after another until told to stop (file $WORK/stop), in the
# background; a refused write is skipped (the primary may be down).
writer() {  # FIRST LAST
  for i in $(seq "$1" "$2"); do
    [ -e "$WORK/stop" ] && break
    write_one "$i" || true
  done
}
start_writer() { rm -f "$WORK/stop"; writer "$1" "$2" & WRITER=$!; }
stop_writer() { touch "$WORK/stop"; wait "$WRITER" || true; }
acked_count() { wc -l <"$ACKED"; }
# Reads every acknowledged write from HOST_ADDR and compares its CRC-32C with the write's.
check_acked_on() {  # HOST_ADDR WHAT
  local i crc got bad=0
  while read -r i crc; do
    got=$(ctl --json read --host "$1" "$VOLUME_NAME" $((i * TRACK)) "$WRITE_LENGTH" |
      sed -n 's/.*"crc32c":\([0-9]*\).*/\1/p')
    if [ "$got" != "$crc" ]; then
      echo "write $i: crc32c $got on $2, acknowledged with $crc"
      bad=$((bad + 1))
    fi
  done <"$ACKED"
  [ $bad -eq 0 ] || fail "$bad acknowledged writes are not on $2"
  echo "all $(acked_count) acknowledged writes read back from $2"
}

step "writes through gRPC from the client, read back from the mirror"
for i in $(seq 0 19); do write_one "$i" || fail "write $i refused by a healthy pair"; done
check_acked_on mirror:7101 "the mirror"

# --- 5. partition ------------------------------------------------------------------------
step "cut the mirror off the network while writes go on"
start_writer 20 199
podman network disconnect "$P-net" "$P-mirror"
for _ in $(seq 1 60); do
  state=$(on_primary --json status | sed -n 's/.*"pair_state":"\([^"]*\)".*/\1/p')
  [ "$state" != Synchronized ] && [ "$state" != SyncInProg ] && break
  sleep 1
done
echo "primary's pair state with the mirror cut off: $state"
[ "$state" = Partitioned ] || [ "$state" = Suspended ] || fail "expected Partitioned, got $state"
before=$(acked_count)
sleep 3
[ "$(acked_count)" -gt "$before" ] || fail "no write acknowledged while the mirror was cut off"
echo "writes go on: $(($(acked_count) - before)) acknowledged in 3 s with the mirror away"
echo "owed tracks on the primary: $(on_primary --json status | sed -n 's/.*"owed_tracks":"\([0-9]*\)".*/\1/p' | head -1)"

step "reconnect the mirror, wait for the resync, check consistency"
# The mirror comes back at another address, as a host moved to another port would: a
# container reconnected with its old address stayed unreachable on the test machines. The
# other containers learn it through /etc/hosts (what the daemons' name lookups read), so
# the primary must resolve "mirror" again to reconnect.
podman network connect "$P-net" "$P-mirror"
IP[mirror]=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$P-mirror")
hosts_name_mirror primary
hosts_name_mirror client
echo "the mirror is back at ${IP[mirror]}"
wait_reachable primary:7100
wait_reachable mirror:7100
stop_writer
wait_state Synchronized 120
on_primary consistency "$VOLUME_NAME" --wait 10000 || fail "not consistent after the resync"
check_acked_on mirror:7101 "the mirror"

# --- 6. crash ------------------------------------------------------------------------------
step "kill the primary container with SIGKILL while writes go on, restart it"
start_writer 200 399
sleep 2
podman kill --signal KILL "$P-primary" >/dev/null
stop_writer
echo "$(acked_count) writes acknowledged in all before the kill"
podman start "$P-primary" >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log"; fail "restart"; }
hosts_name_mirror primary  # podman wrote the container's /etc/hosts afresh
wait_healthy "$P-primary"
wait_reachable primary:7101
check_acked_on primary:7101 "the restarted primary"
wait_state Synchronized 120
on_primary consistency "$VOLUME_NAME" --wait 10000 || fail "not consistent after the restart"
check_acked_on mirror:7101 "the mirror"

cleanup_leftovers

# --- 7. compose -----------------------------------------------------------------------------
step "docker/compose.yaml with podman-compose: both healthy, a write mirrored"
# compose.yaml reads the secrets from docker/secrets/ (docs/containers.md makes them); the
# test makes its own there, in a copy of the docker/ directory.
COMPOSE_DIR="$WORK/compose"
mkdir -p "$COMPOSE_DIR"
cp -r "$ROOT/docker" "$COMPOSE_DIR/"
mkdir -p "$COMPOSE_DIR/docker/secrets"
cp -p "$SECRETS/peer.secret" "$COMPOSE_DIR/docker/secrets/peer.secret"
cp -p "$SECRETS/primary.token" "$COMPOSE_DIR/docker/secrets/primary-admin.token"
cp -p "$SECRETS/mirror.token" "$COMPOSE_DIR/docker/secrets/mirror-admin.token"
compose() { (cd "$COMPOSE_DIR/docker" && SIMARRAY_IMAGE="$IMAGE" podman-compose -p "$P-compose" "$@"); }
compose down -v >/dev/null 2>&1 || true  # what a failed run may have left
COMPOSE_UP=1
compose up -d --no-build >"$WORK/compose.log" 2>&1 || { cat "$WORK/compose.log"; fail "compose up"; }
wait_healthy "$P-compose_mirror_1"
wait_healthy "$P-compose_primary_1"
in_compose() {  # SERVICE ARGS...
  local service=$1
  shift
  podman exec "$P-compose_${service}_1" simarrayctl --token-file /run/secrets/admin.token "$@"
}
in_compose primary wait Synchronized --timeout 60 >/dev/null || fail "compose pair not Synchronized"
in_compose primary volume create cvol 1M >/dev/null
in_compose primary write --host 127.0.0.1:7101 cvol 4096 --pattern 0x5a --length 64K >/dev/null
in_compose primary consistency cvol --wait 5000 || fail "compose pair not consistent"
got=$(in_compose mirror --json read --host 127.0.0.1:7101 cvol 4096 65536 | sed -n 's/.*"crc32c":\([0-9]*\).*/\1/p')
want=$(in_compose primary --json read --host 127.0.0.1:7101 cvol 4096 65536 | sed -n 's/.*"crc32c":\([0-9]*\).*/\1/p')
[ -n "$got" ] && [ "$got" = "$want" ] || fail "compose: the mirror reads crc32c $got, the primary $want"
echo "compose pair healthy, the write read back from the mirror"
