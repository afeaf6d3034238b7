#!/usr/bin/env bash
# Local transfer benchmark: `rtsync sync -a` against stock `rsync -a`, side by side in one run.
#
#   bench/local.sh [WORKDIR]        (default WORKDIR: /tmp/rtsync-bench)
#
# As root the work directory is a fresh tmpfs (12 GiB at most, in RAM), so the figures measure
# the tools rather than the history of the disk; BENCH_FS=disk runs on the disk instead (needs
# ~5 GiB free).
#
# Cases: 100,000 small files copied into an empty directory; a re-run with nothing changed; a
# 1 GiB file with 1 MiB changed in the middle. Each case runs ROUNDS times per tool, tools
# alternating, every copy into a directory never used before. ext4 skips inodes freed in the last
# ~35 seconds when it allocates new ones, which makes file creation several times slower right
# after a large delete: the script deletes nothing until the end and waits that window out
# after making its data, so neither tool pays for the other's (or a previous run's) deletes.
# Prints a Markdown table of medians (wall seconds, peak RSS) and the ratio rsync/tool
# (> 1: the tool is faster than rsync).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/rtsync-bench}"
rounds="${ROUNDS:-3}"
cargo build --release --quiet --bin rtsync
rt="$PWD/target/release/rtsync"
command -v rsync >/dev/null || { echo "stock rsync is needed: apt-get install -y rsync" >&2; exit 1; }
if [ -e "$work" ]; then
  echo "$work exists: remove it (and wait a minute) or pass another directory" >&2
  exit 1
fi
mkdir -p "$work"
on_tmpfs=0
if [ "$(id -u)" -eq 0 ] && [ "${BENCH_FS:-tmpfs}" = tmpfs ]; then
  mount -t tmpfs -o size=12g rtsync-bench "$work"
  trap 'umount "$work"; rmdir "$work"' EXIT
  on_tmpfs=1
fi
echo "work directory: $work ($( [ $on_tmpfs = 1 ] && echo tmpfs || echo disk))" >&2
results="$work/results.tsv"
: >"$results"

# measure CASE TOOL COMMAND...: appends "case tool seconds maxrss_kb" to the results.
measure() {
  local case="$1" tool="$2"
  shift 2
  sync
  /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null
  echo "$case	$tool	$(cat "$work/time.out")" >>"$results"
}

echo "creating 100,000 small files..." >&2
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
if [ $on_tmpfs = 0 ]; then
  sync
  sleep 40
fi

for i in $(seq "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then
    measure "100k files, initial copy" rsync rsync -a "$work/small/" "$work/rsync-small-$i/"
    measure "100k files, initial copy" rtsync "$rt" sync -a "$work/small/" "$work/rtsync-small-$i/"
  else
    measure "100k files, initial copy" rtsync "$rt" sync -a "$work/small/" "$work/rtsync-small-$i/"
    measure "100k files, initial copy" rsync rsync -a "$work/small/" "$work/rsync-small-$i/"
  fi
done
for i in $(seq $((rounds * 2))); do
  measure "100k files, no-change re-run" rtsync "$rt" sync -a "$work/small/" "$work/rtsync-small-1/"
  measure "100k files, no-change re-run" rsync rsync -a "$work/small/" "$work/rsync-small-1/"
done

echo "creating a 1 GiB file..." >&2
mkdir -p "$work/big/src" "$work/big/old"
head -c $((1 << 30)) /dev/urandom >"$work/big/old/file"
touch -d '2024-01-01 00:00:00' "$work/big/old/file"
cp "$work/big/old/file" "$work/big/src/file"
python3 - "$work/big/src/file" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(512 << 20)
    f.write(os.urandom(1 << 20))
PY
touch -d '2025-01-01 00:00:00' "$work/big/src/file"

fresh_basis() { # a destination holding the old version, made before the clock starts
  mkdir -p "$1"
  cp --preserve=all "$work/big/old/file" "$1/file"
}
for i in $(seq "$rounds"); do
  fresh_basis "$work/big/rsync-$i"
  measure "1 GiB file, 1 MiB changed" "rsync" rsync -a "$work/big/src/" "$work/big/rsync-$i/"
  fresh_basis "$work/big/rsyncd-$i"
  measure "1 GiB file, 1 MiB changed" "rsync --no-whole-file" rsync -a --no-whole-file "$work/big/src/" "$work/big/rsyncd-$i/"
  fresh_basis "$work/big/rtsync-$i"
  measure "1 GiB file, 1 MiB changed" "rtsync" "$rt" sync -a "$work/big/src/" "$work/big/rtsync-$i/"
  cmp "$work/big/src/file" "$work/big/rtsync-$i/file"
  rm -rf "$work/big/rsync-$i" "$work/big/rsyncd-$i" "$work/big/rtsync-$i" # three inodes, 3 GiB
done
fresh_basis "$work/big/stats"
literal=$("$rt" sync -a --stats "$work/big/src/" "$work/big/stats/" | sed -n 's/^Literal data: //p')

python3 - "$results" "$literal" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    case, tool, secs, rss = line.rstrip("\n").split("\t")[0], line.split("\t")[1], *line.split("\t")[2].split()
    rows.setdefault(case, collections.OrderedDict()).setdefault(tool, []).append((float(secs), int(rss)))
print("| case | tool | median wall s | median peak RSS MiB | rsync time / tool time |")
print("|---|---|---|---|---|")
for case, tools in rows.items():
    med = {t: statistics.median(s for s, _ in v) for t, v in tools.items()}
    for t, v in tools.items():
        rss = statistics.median(r for _, r in v) / 1024
        ratio = med["rsync"] / med[t] if med[t] else float("inf")
        print(f"| {case} | {t} | {med[t]:.2f} | {rss:.1f} | {ratio:.2f} |")
print()
print(f"rtsync literal data for the 1 GiB case: {sys.argv[2]}")
PY
[ $on_tmpfs = 1 ] || rm -rf "$work"
