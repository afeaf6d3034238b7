#!/usr/bin/env bash
# Engine benchmark: `rtsync run` pushing to an `rtsync daemon` (rtsync-peer) and to a stock
# `rsync --daemon` (rtsync), against the tutorials' `inotifywait | while read; rsync` loop and
# Debian's lsyncd (default.rsync, delay = 1), both pushing to that same stock daemon, in one run.
#
#   bench/engine.sh [WORKDIR]        (default WORKDIR: /tmp/rtsync-ebench; root: tmpfs)
#
# Two daemons: stock `rsync --daemon` (modules rtsync, loop, lsyncd) and `rtsync daemon`
# (module rtsync-peer), both from rsyncd.conf files this script writes. As root (and unless
# NETNS=0), each daemon runs in a network namespace of its own (rtsb-PID-rsync,
# rtsb-PID-rtsync), reached over a veth pair with addresses in 198.18.N.0/30 (RFC 2544's
# benchmarking range; an `unreachable` route for the pair's /29 keeps these addresses off
# every other interface should a veth vanish), and the host end's
# /sys/class/net/VETH/statistics/{tx,rx}_bytes give the bytes on the wire per phase. Without
# root (or with NETNS=0) both daemons listen on 127.0.0.1 and the wire columns show "—".
# Everything created here (namespaces, veths, route, tmpfs, daemons) is removed on exit.
#
# Workloads (bench/engine_bench.py does the work; its docstring says how lag, CPU, RSS and
# bytes on the wire are measured), each scaled by an environment variable:
#   STREAM_SECS=10          length of each steady stream
#   BIG_RATES="50 200 500 1000"  files/s of 10-300 KB files (add 2000 for the heavy case)
#   SMALL_RATES="2000"      files/s of 1-4 KB files (add 10000 for the heavy case)
#   BURST_FILES=10000 BURST_DIRS=100   a burst of small files in new directories
#   RENAME_FILES=5000       a directory of that many files renamed
#   TREE_FILES=100000 TREE_CHANGES=5   single changes in a tree of that many files
#   ROUNDS=1                rounds (replicator order rotates; lags pooled, CPU/RSS medians)
#   DRAIN_CAP=20 ARRIVAL_TIMEOUT=60    seconds a replicator may stay busy after the last file
#                           arrived / a file may take to arrive before it counts as missing
#   REPLICATORS="rtsync-peer rtsync loop lsyncd"  PHASES="stream burst ..." (prefixes): a subset
#   QUICK=1                 a smoke run of a few minutes (small sizes, but the issue's goal
#                           cases stream-big-1000 and a 5,000-file rename are kept)
#   NETNS=0                 daemons on 127.0.0.1, no wire counts (the default without root)
#   RTSYNC_RUN_ARGS="-n 1"  more options for the rtsync replicators' `rtsync run`
#   RESULTS_JSON=FILE       raw per-phase figures; LOG_DIR=DIR keeps the replicators' logs
#   RTSYNC_BIN=PATH         benchmark that binary instead of building target/release/rtsync
# 0 or empty disables a workload (BIG_RATES="" BURST_FILES=0 ...). Prints Markdown tables and,
# for rtsync-peer, the issue's goals (p99 lag < 0.2 s at 1,000 files/s of 10-300 KB files; a
# 5,000-file directory rename done in < 0.2 s with < 1 MB on the wire) as met or not.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/rtsync-ebench}"
if [ "${QUICK:-0}" = 1 ]; then
  export STREAM_SECS="${STREAM_SECS:-3}" BIG_RATES="${BIG_RATES-50 1000}" \
    SMALL_RATES="${SMALL_RATES-2000}" BURST_FILES="${BURST_FILES:-1000}" \
    RENAME_FILES="${RENAME_FILES:-5000}" TREE_FILES="${TREE_FILES:-10000}" \
    TREE_CHANGES="${TREE_CHANGES:-2}" DRAIN_CAP="${DRAIN_CAP:-5}"
fi
py=/usr/bin/python3
[ -x "$py" ] || py=python3
for tool in rsync inotifywait; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install -y rsync inotify-tools" >&2; exit 1; }
done
if ! command -v lsyncd >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y lsyncd >&2; else
    echo "lsyncd is needed: apt-get install -y lsyncd" >&2; exit 1; fi
fi
if [ -z "${RTSYNC_BIN:-}" ]; then
  cargo build --release --quiet --bin rtsync
  RTSYNC_BIN=target/release/rtsync
fi
netns=0
if [ "${NETNS:-1}" != 0 ] && [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then netns=1; fi
[ -e "$work" ] && { echo "$work exists" >&2; exit 1; }
mkdir -p "$work"
if [ "$(id -u)" -eq 0 ]; then
  mount -t tmpfs -o size=12g rtsync-ebench "$work"
fi
# Names of what this run creates (its pid keeps concurrent runs apart).
tag="rtsb-$$"
net_idx=$(( $$ % 250 + 1 ))          # 198.18.net_idx.0/29: two /30s, one per daemon
made_ns=() made_veth=() made_route=
daemon_pids=()
cleanup() {
  # Only what this script started or made, by pid or by name: the harness (which stops its
  # replicators), the daemons, then the namespaces, veths and route.
  if [ -n "${harness_pid:-}" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
  for pid in "${daemon_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for v in "${made_veth[@]}"; do ip link del "$v" 2>/dev/null || true; done
  for ns in "${made_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "$made_route" ]; then ip route del $made_route 2>/dev/null || true; fi
  if mountpoint -q "$work"; then umount "$work"; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A copy of the binary, so that a rebuild during the run cannot swap it (`rtsync run` starts its
# transfers from its own executable).
mkdir -p "$work/bin"
cp "$RTSYNC_BIN" "$work/bin/rtsync"

if [ "$netns" = 1 ]; then
  if ip -4 route show | grep -q "^[a-z ]*198\.18\.$net_idx\."; then
    echo "198.18.$net_idx.0/29 is already routed here; not touching it" >&2; exit 1
  fi
  made_route="unreachable 198.18.$net_idx.0/29 metric 4242"
  ip route add $made_route
fi

# setup_net KIND OFFSET: sets addr[KIND] and iface[KIND], the address KIND's daemon listens on
# and the host end of its veth (KIND: rsync or rtsync).
declare -A addr iface
setup_net() {
  local kind=$1 off=$2
  if [ "$netns" = 0 ]; then addr[$kind]=127.0.0.1; iface[$kind]=-; return; fi
  local ns="$tag-$kind" host="${tag}${kind:0:2}" peer="${tag}${kind:0:2}p"
  local a="198.18.$net_idx.$((off + 1))" b="198.18.$net_idx.$((off + 2))"
  ip netns add "$ns"
  made_ns+=("$ns")
  made_veth+=("$host")
  ip link add "$host" type veth peer name "$peer"
  ip link set "$peer" netns "$ns"
  # No IPv6 on either end: no router solicitations or MLD reports in the counts.
  if [ -e "/proc/sys/net/ipv6/conf/$host/disable_ipv6" ]; then
    echo 1 > "/proc/sys/net/ipv6/conf/$host/disable_ipv6"
    ip netns exec "$ns" sh -c "echo 1 > /proc/sys/net/ipv6/conf/$peer/disable_ipv6"
  fi
  ip addr add "$a/30" dev "$host"
  ip link set "$host" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$b/30" dev "$peer"
  ip -n "$ns" link set "$peer" up
  addr[$kind]=$b
  iface[$kind]=$host
}
setup_net rsync 0
setup_net rtsync 4

run_in() {  # run_in KIND CMD...: CMD in KIND's namespace (exec'd: $! is CMD's pid)
  if [ "$netns" = 1 ]; then exec ip netns exec "$tag-$1" "${@:2}"; else exec "${@:2}"; fi
}
free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
daemon_args=()
for kind in rsync rtsync; do
  conf="$work/$kind-daemon.conf"
  {
    echo "use chroot = no"
    echo "log file = $work/$kind-daemon.log"
    [ "$(id -u)" -eq 0 ] && printf 'uid = root\ngid = root\n'
    if [ "$kind" = rsync ]; then mods="rtsync loop lsyncd"; else mods="rtsync-peer"; fi
    for m in $mods; do
      mkdir -p "$work/dst/$m"
      printf '[%s]\n  path = %s\n  read only = no\n' "$m" "$work/dst/$m"
    done
  } > "$conf"
  # In its own namespace a daemon has rsync's port to itself.
  if [ "$netns" = 1 ]; then port=873; else port=$(free_port); fi
  if [ "$kind" = rsync ]; then prog=(rsync --daemon); else prog=("$work/bin/rtsync" daemon); fi
  (run_in "$kind" "${prog[@]}" --no-detach --address="${addr[$kind]}" --port="$port" \
     --config="$conf") &
  daemon_pids+=($!)
  ok=
  for _ in $(seq 100); do
    if rsync "rsync://${addr[$kind]}:$port/" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "the $kind daemon did not answer on ${addr[$kind]}:$port" >&2; exit 1; }
  daemon_args+=(--daemon "$kind=${addr[$kind]}:$port:${daemon_pids[-1]}:${iface[$kind]}")
done

start=$(date +%s)
"$py" bench/engine_bench.py --work "$work" "${daemon_args[@]}" \
  --rtsync "$work/bin/rtsync" ${RESULTS_JSON:+--json "$RESULTS_JSON"} &
harness_pid=$!
wait "$harness_pid"
harness_pid=
echo "(whole script: $(( $(date +%s) - start )) s after the build)"
