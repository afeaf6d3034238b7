#!/usr/bin/env bash
# Engine benchmark: `rtsync run` vs the tutorials' `inotifywait | while read; rsync` loop vs
# Debian's lsyncd (default.rsync, delay = 1), all three pushing to the same stock
# `rsync --daemon` on loopback (a module each), in one run.
#
#   bench/engine.sh [WORKDIR]        (default WORKDIR: /tmp/rtsync-ebench; root: tmpfs)
#
# Workloads (bench/engine_bench.py does the work; its docstring says how lag, CPU and RSS are
# measured), each scaled by an environment variable:
#   STREAM_SECS=10          length of each steady stream
#   BIG_RATES="50 200 500"  files/s of 10-300 KB files (add 2000 for the heavy case)
#   SMALL_RATES="2000"      files/s of 1-4 KB files (add 10000 for the heavy case)
#   BURST_FILES=10000 BURST_DIRS=100   a burst of small files in new directories
#   RENAME_FILES=5000       a directory of that many files renamed
#   TREE_FILES=100000 TREE_CHANGES=5   single changes in a tree of that many files
#   ROUNDS=1                rounds (replicator order rotates; lags pooled, CPU/RSS medians)
#   DRAIN_CAP=20 ARRIVAL_TIMEOUT=60    seconds a replicator may stay busy after the last file
#                           arrived / a file may take to arrive before it counts as missing
#   REPLICATORS="rtsync loop lsyncd"  PHASES="stream burst ..." (prefixes) to run a subset
#   QUICK=1                 a ~3-minute smoke run (small sizes)
#   RESULTS_JSON=FILE       raw per-phase figures; LOG_DIR=DIR keeps the replicators' logs
#   RTSYNC_BIN=PATH         benchmark that binary instead of building target/release/rtsync
# 0 or empty disables a workload (BIG_RATES="" BURST_FILES=0 ...). Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/rtsync-ebench}"
if [ "${QUICK:-0}" = 1 ]; then
  export STREAM_SECS="${STREAM_SECS:-3}" BIG_RATES="${BIG_RATES-50 500}" \
    SMALL_RATES="${SMALL_RATES-2000}" BURST_FILES="${BURST_FILES:-1000}" \
    RENAME_FILES="${RENAME_FILES:-500}" TREE_FILES="${TREE_FILES:-10000}" \
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
[ -e "$work" ] && { echo "$work exists" >&2; exit 1; }
mkdir -p "$work"
if [ "$(id -u)" -eq 0 ]; then
  mount -t tmpfs -o size=12g rtsync-ebench "$work"
fi
cleanup() {
  # Only what this script started, by pid: the harness (which stops its replicators), then
  # the daemon.
  if [ -n "${harness_pid:-}" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
  if [ -n "${daemon_pid:-}" ]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if mountpoint -q "$work"; then umount "$work"; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A copy of the binary, so that a rebuild during the run cannot swap it (`rtsync run` starts its
# transfers from its own executable).
mkdir -p "$work/bin"
cp "$RTSYNC_BIN" "$work/bin/rtsync"

conf="$work/rsyncd.conf"
{
  echo "use chroot = no"
  echo "log file = $work/rsyncd.log"
  [ "$(id -u)" -eq 0 ] && printf 'uid = root\ngid = root\n'
  for m in rtsync loop lsyncd; do
    mkdir -p "$work/dst/$m"
    printf '[%s]\n  path = %s\n  read only = no\n' "$m" "$work/dst/$m"
  done
} > "$conf"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rsync --daemon --no-detach --address=127.0.0.1 --port="$port" --config="$conf" &
daemon_pid=$!
for _ in $(seq 50); do
  rsync "rsync://127.0.0.1:$port/" >/dev/null 2>&1 && break
  sleep 0.1
done

start=$(date +%s)
"$py" bench/engine_bench.py --work "$work" --port "$port" --daemon-pid "$daemon_pid" \
  --rtsync "$work/bin/rtsync" ${RESULTS_JSON:+--json "$RESULTS_JSON"} &
harness_pid=$!
wait "$harness_pid"
harness_pid=
echo "(whole script: $(( $(date +%s) - start )) s after the build)"
