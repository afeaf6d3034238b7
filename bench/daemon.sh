#!/usr/bin/env bash
# Push benchmark: `rtsync sync -a` vs stock `rsync -a`, both pushing to the same stock
# `rsync --daemon` on loopback (separate modules), in one run.
#
#   ROUNDS=3 bench/daemon.sh [WORKDIR]      (default WORKDIR: /tmp/rtsync-dbench; root: tmpfs)
#
# Cases: 100,000 small files pushed into an empty module; the same push again with nothing
# changed; a 1 GiB file with 1 MiB changed in the middle pushed over its old version. Prints a
# Markdown table of medians and the ratio rsync/rtsync (> 1: rtsync faster).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/rtsync-dbench}"
rounds="${ROUNDS:-3}"
cargo build --release --quiet --bin rtsync
rt="$PWD/target/release/rtsync"
[ -e "$work" ] && { echo "$work exists" >&2; exit 1; }
mkdir -p "$work"
if [ "$(id -u)" -eq 0 ]; then
  mount -t tmpfs -o size=12g rtsync-dbench "$work"
fi
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  if mountpoint -q "$work"; then umount "$work"; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/small" <<'PY'
import os, sys, random
root = sys.argv[1]
random.seed(7)
for d in range(100):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(1000):
        with open(f"{root}/d{d:03}/f{f:04}", "wb") as fh:
            fh.write(random.randbytes(100 + random.randrange(4000)))
PY
mkdir -p "$work/big"
head -c $((1 << 30)) /dev/urandom > "$work/big/file"

conf="$work/rsyncd.conf"
{
  echo "use chroot = no"
  [ "$(id -u)" -eq 0 ] && printf 'uid = root\ngid = root\n'
  for i in $(seq "$rounds"); do
    for tool in rsync rtsync; do
      for case in small big; do
        mkdir -p "$work/m/$tool-$case-$i"
        printf '[%s]\n  path = %s\n  read only = no\n' "$tool-$case-$i" "$work/m/$tool-$case-$i"
      done
    done
  done
} > "$conf"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rsync --daemon --no-detach --address=127.0.0.1 --port="$port" --config="$conf" &
daemon_pid=$!
sleep 1

results="$work/results.tsv"
: > "$results"
measure() { # case tool command...
  local case="$1" tool="$2"; shift 2
  /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" > /dev/null
  echo "$case	$tool	$(cat "$work/time.out")" >> "$results"
}
cmd_of() { # the client command of a tool, as words
  if [ "$1" = rtsync ]; then echo "$rt sync"; else echo "rsync"; fi
}
for i in $(seq "$rounds"); do
  for tool in rsync rtsync; do
    measure "100k files, initial push" "$tool" $(cmd_of "$tool") -a "$work/small/" "rsync://127.0.0.1:$port/$tool-small-$i/"
    measure "100k files, no-change push" "$tool" $(cmd_of "$tool") -a "$work/small/" "rsync://127.0.0.1:$port/$tool-small-$i/"
    # The old version of the big file, then a 1 MiB change in the middle of the source.
    cp "$work/big/file" "$work/m/$tool-big-$i/file"
    touch -d '2024-01-01' "$work/m/$tool-big-$i/file"
  done
  python3 -c "
import os,sys
f=open(sys.argv[1],'r+b'); f.seek(512<<20); f.write(os.urandom(1<<20)); f.close()" "$work/big/file"
  touch -d '2025-01-01' "$work/big/file"
  for tool in rsync rtsync; do
    measure "1 GiB file, 1 MiB changed, push" "$tool" $(cmd_of "$tool") -a "$work/big/" "rsync://127.0.0.1:$port/$tool-big-$i/"
    cmp "$work/big/file" "$work/m/$tool-big-$i/file"
  done
done

python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    case, tool, rest = line.rstrip("\n").split("\t")
    secs, rss = rest.split()
    rows.setdefault(case, collections.OrderedDict()).setdefault(tool, []).append((float(secs), int(rss)))
print("| case | tool | median wall s | median client RSS MiB | rsync time / tool time |")
print("|---|---|---|---|---|")
for case, tools in rows.items():
    med = {t: statistics.median(s for s, _ in v) for t, v in tools.items()}
    for t, v in tools.items():
        rss = statistics.median(r for _, r in v) / 1024
        print(f"| {case} | {t} | {med[t]:.2f} | {rss:.1f} | {med['rsync'] / med[t]:.2f} |")
PY
