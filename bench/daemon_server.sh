#!/usr/bin/env bash
# Daemon benchmark, server side: Debian's stock `rsync` client pushing to (and pulling from)
# `rtsync daemon` and `rsync --daemon`, in one run. Both daemons read the same rsyncd.conf
# (`use chroot = no`, `munge symlinks = no`, read-write modules, `uid`/`gid = root` as root)
# and listen on free 127.0.0.1 ports; both are started afresh for every case (so each case
# starts from an idle daemon) and stopped by their pids.
#
#   bench/daemon_server.sh [WORKDIR]     (default WORKDIR: /tmp/rtsync-sbench; root: tmpfs)
#
# Cases (bench/daemon_server.py does the work; its docstring says how CPU and memory are
# measured), scaled by environment variables:
#   SMALL_FILES=100000 SMALL_DIRS=100   files of MIN_KIB-MAX_KIB (1-8) KiB: initial push,
#                                       no-change push, pull into an empty directory
#   BIG_MIB=1024 CHANGE_KIB=1024        one file pushed, then CHANGE_KIB in its middle changed
#                                       and pushed again (--stats: Literal data)
#   CLIENTS=32 CLIENT_FILES=2000        clients pushing at once, each its own tree into its
#                                       own subdirectory of the module
#   ROUNDS=1                            rounds (the daemon that goes first alternates); medians
#   CASES="small big multi"             a subset
#   QUICK=1                             a smoke run (10,000 files, 64 MiB, 8 clients x 200)
#   RESULTS_JSON=FILE                   raw per-step figures (JSON lines)
#   LOG_DIR=DIR                         keep the daemons' logs and the clients' output there
#   RTSYNC_BIN=PATH                     benchmark that binary instead of building
#                                       target/release/rtsync
# Prints Markdown tables (medians) and ratios rtsync / rsync (below 1: rtsync better).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/rtsync-sbench}"
if [ "${QUICK:-0}" = 1 ]; then
  export SMALL_FILES="${SMALL_FILES:-10000}" BIG_MIB="${BIG_MIB:-64}" CHANGE_KIB="${CHANGE_KIB:-256}" \
    CLIENTS="${CLIENTS:-8}" CLIENT_FILES="${CLIENT_FILES:-200}"
fi
rounds="${ROUNDS:-1}"
cases="${CASES:-small big multi}"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
command -v rsync >/dev/null || { echo "rsync is needed: apt-get install -y rsync" >&2; exit 1; }
if [ -z "${RTSYNC_BIN:-}" ]; then
  cargo build --release --quiet --bin rtsync
  RTSYNC_BIN=target/release/rtsync
fi
[ -e "$work" ] && { echo "$work exists" >&2; exit 1; }
mkdir -p "$work"
if [ "$(id -u)" -eq 0 ]; then
  mount -t tmpfs -o size=12g rtsync-sbench "$work"
fi
rt_pid= rs_pid=
stop_daemons() {
  # Only the two daemons this script started, by pid.
  local p
  for p in $rt_pid $rs_pid; do
    kill "$p" 2>/dev/null || true
  done
  for p in $rt_pid $rs_pid; do
    wait "$p" 2>/dev/null || true
  done
  rt_pid= rs_pid=
}
cleanup() {
  if [ -n "${harness_pid:-}" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
  stop_daemons
  if [ -n "${LOG_DIR:-}" ] && [ -d "$work/logs" ]; then
    mkdir -p "$LOG_DIR" && cp -r "$work/logs/." "$work/out" "$LOG_DIR/" 2>/dev/null || true
  fi
  if mountpoint -q "$work"; then umount "$work"; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A copy of the binary, so that a rebuild during the run cannot swap it.
mkdir -p "$work/bin" "$work/logs" "$work/m"
cp "$RTSYNC_BIN" "$work/bin/rtsync"
rt="$work/bin/rtsync"

conf="$work/rsyncd.conf"
{
  echo "use chroot = no"
  echo "munge symlinks = no"
  [ "$(id -u)" -eq 0 ] && printf 'uid = root\ngid = root\n'
  for c in small big multi; do
    for d in rtsync rsync; do
      printf '[%s]\n  path = %s\n  read only = no\n' "$c-$d" "$work/m/$c-$d"
      mkdir -p "$work/m/$c-$d"
    done
  done
} > "$conf"

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start_daemons() { # case round
  local rt_port rs_port
  rt_port=$(free_port)
  rs_port=$(free_port)
  while [ "$rs_port" = "$rt_port" ]; do rs_port=$(free_port); done
  "$rt" daemon --no-detach --config "$conf" --port "$rt_port" --address 127.0.0.1 \
    --log-file "$work/logs/rtsync-$1-r$2.log" 2>>"$work/logs/rtsync.stderr" &
  rt_pid=$!
  rsync --daemon --no-detach --config="$conf" --port="$rs_port" --address=127.0.0.1 \
    --log-file="$work/logs/rsyncd-$1-r$2.log" 2>>"$work/logs/rsyncd.stderr" &
  rs_pid=$!
  local p
  for p in "$rt_port" "$rs_port"; do
    for _ in $(seq 100); do
      rsync "rsync://127.0.0.1:$p/" >/dev/null 2>&1 && break
      sleep 0.1
    done
    rsync "rsync://127.0.0.1:$p/" >/dev/null || { echo "no daemon on port $p" >&2; exit 1; }
  done
  daemon_args=("$rt_port" "$rt_pid" "$rs_port" "$rs_pid")
}

results="${RESULTS_JSON:-$work/results.jsonl}"
: > "$results"
start=$(date +%s)
"$py" bench/daemon_server.py gen "$work"
for round in $(seq "$rounds"); do
  for c in $cases; do
    start_daemons "$c" "$round"
    "$py" bench/daemon_server.py case "$c" "$work" "$round" "$results" "${daemon_args[@]}" &
    harness_pid=$!
    wait "$harness_pid"
    harness_pid=
    stop_daemons
  done
done
if [ -s "$work/logs/rtsync.stderr" ] || [ -s "$work/logs/rsyncd.stderr" ]; then
  echo "daemons' stderr:" >&2
  cat "$work/logs/rtsync.stderr" "$work/logs/rsyncd.stderr" >&2
fi
notable=$(grep -hiE 'error|fail|warn|refused|panic' "$work"/logs/*.log 2>/dev/null | head -20 || true)
[ -n "$notable" ] && printf "daemons' log lines of note:\n%s\n" "$notable" >&2
echo "rtsync: $("$rt" --version 2>/dev/null | head -1); $(rsync --version | head -1)"
"$py" bench/daemon_server.py report "$results"
echo "(whole script: $(( $(date +%s) - start )) s after the build)"
