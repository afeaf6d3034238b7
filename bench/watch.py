#!/usr/bin/env python3
"""Watch benchmark: `rtsync watch -mr` against `inotifywait -mr`, side by side in one run.

    sudo bench/watch.py [--sizes 10000,100000,1000000] [--storm 100000]

For trees of N directories (created on a tmpfs when run as root): time from start until the tool
says "Watches established." (as root also for `rtsync watch -F`, fanotify), and its resident
memory then (user space: VmRSS, per directory
above a one-directory baseline). Then a storm of file creations in a watched directory: how many
CREATE events each tool delivered and at what rate. fs.inotify.max_user_watches is raised for
the run when needed and restored afterwards. Prints a Markdown table.
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTSYNC = os.path.join(ROOT, "target", "release", "rtsync")
LIMIT = "/proc/sys/fs/inotify/max_user_watches"


def make_tree(base, n):
    """n directories: base plus a two-level fan-out, like a web root."""
    os.makedirs(base)
    made, i = 1, 0
    while made < n:
        top = os.path.join(base, f"t{i:04}")
        os.mkdir(top)
        made += 1
        for j in range(min(99, n - made)):
            os.mkdir(os.path.join(top, f"d{j:02}"))
            made += 1
        i += 1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(tool, tree, out_path):
    cmd = {"rtsync": [RTSYNC, "watch"], "rtsync -F": [RTSYNC, "watch", "-F"]}.get(tool, ["inotifywait"])
    cmd += ["-mr", "--format", "%e %w%f", tree]
    out = open(out_path, "wb")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
    for line in p.stderr:
        if b"Watches established" in line:
            break
    return p, time.monotonic() - t0


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()


def setup_case(work, n):
    tree = os.path.join(work, f"tree{n}")
    make_tree(tree, n)
    rows = []
    tools = ("inotifywait", "rtsync", "rtsync -F") if os.geteuid() == 0 else ("inotifywait", "rtsync")
    for tool in tools:
        times, rss = [], []
        for _ in range(3):
            p, secs = start(tool, tree, os.devnull)
            times.append(secs)
            rss.append(rss_kib(p.pid))
            stop(p)
        rows.append((tool, sorted(times)[1], sorted(rss)[1]))
    shutil.rmtree(tree)
    return rows


def storm(work, n):
    rows = []
    for tool in ("inotifywait", "rtsync"):
        d = os.path.join(work, f"storm-{tool}")
        os.makedirs(d)
        out = os.path.join(work, f"storm-{tool}.out")
        p, _ = start(tool, d, out)
        t0 = time.monotonic()
        for i in range(n):
            open(os.path.join(d, f"f{i}"), "wb").close()
        # Wait until the output stops growing.
        last, stable = -1, 0
        while stable < 5:
            time.sleep(0.1)
            size = os.path.getsize(out)
            stable = stable + 1 if size == last else 0
            last = size
        elapsed = time.monotonic() - t0 - 0.5
        stop(p)
        creates = sum(1 for line in open(out, "rb") if line.startswith(b"CREATE "))
        overflow = sum(1 for line in open(out, "rb") if line.startswith(b"Q_OVERFLOW"))
        rows.append((tool, creates, overflow, creates / max(elapsed, 1e-3)))
        shutil.rmtree(d)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--storm", type=int, default=100000)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "rtsync"], cwd=ROOT, check=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = tempfile.mkdtemp(prefix="rtsync-watch-bench.")
    mounted = False
    old_limit = None
    try:
        if os.geteuid() == 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8g,nr_inodes=8m", "rtsync-watch-bench", work], check=True)
            mounted = True
            old_limit = open(LIMIT).read().strip()
            need = 2 * (max(sizes) + 1000) + 100000
            if int(old_limit) < need:
                open(LIMIT, "w").write(str(need))
        base = {tool: rss for tool, _, rss in setup_case(work, 1)}
        print("| tree | tool | setup s (median of 3) | VmRSS MiB | bytes per directory | inotifywait time / tool time |")
        print("|---|---|---|---|---|---|")
        for n in sizes:
            rows = setup_case(work, n)
            ref = dict((t, s) for t, s, _ in rows)["inotifywait"]
            for tool, secs, rss in rows:
                per_dir = max(rss - base[tool], 0) * 1024 / n
                print(f"| {n:,} dirs | {tool} | {secs:.3f} | {rss/1024:.1f} | {per_dir:.0f} | {ref/secs:.2f} |")
        print()
        print(f"Storm of {args.storm:,} file creations in one watched directory:")
        print()
        print("| tool | CREATE events delivered | Q_OVERFLOW | events/s |")
        print("|---|---|---|---|")
        for tool, creates, overflow, rate in storm(work, args.storm):
            print(f"| {tool} | {creates:,} | {overflow} | {rate:,.0f} |")
    finally:
        if old_limit is not None:
            open(LIMIT, "w").write(old_limit)
        if mounted:
            subprocess.run(["umount", work])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
