#!/usr/bin/env python3
"""Daemon benchmark, server side: Debian's stock `rsync` client against `rtsync daemon` and
against `rsync --daemon`.

Called by bench/daemon_server.sh, which makes the work directory (a tmpfs as root), writes one
rsyncd.conf, and for every case starts both daemons afresh on free 127.0.0.1 ports and stops
them by pid afterwards. Sub-commands:

  gen     WORK                 the source trees (sizes from the environment, see the .sh)
  case    NAME WORK ROUND ...  one case against both daemons, one daemon at a time (the order
                               alternates with the round); appends JSON lines to --out
  report  RESULTS.jsonl        Markdown tables (medians over rounds) and ratios

Cases (module `<case>-<daemon>` of the shared rsyncd.conf, so each daemon writes its own tree):
  small   `rsync -a --stats SRC/ rsync://127.0.0.1:PORT/small-D/` into an empty module, the same
          again with nothing changed, then `rsync -a --stats rsync://127.0.0.1:PORT/small-D/
          PULL/` into an empty local directory
  big     `rsync -a --stats` of one file into an empty module; then CHANGE_KIB in its middle
          rewritten (mtime moved on an hour) and the same command again ("Literal data" and
          the time of this second push are the figures of interest); cmp after each
  multi   CLIENTS clients at once, client i: `rsync -a --stats SRC/cI/ rsync://127.0.0.1:PORT/
          multi-D/cI/` (its own tree of CLIENT_FILES files, its own subdirectory)

Every result is checked: exit codes, then `rsync -anic --delete SRC/ MODULE_DIR/` (locally, by
checksum, with -a's metadata) must list nothing; cmp for the big file.

Measurements, per daemon and step:
  wall        from the start of the first client to the exit of the last one;
  daemon CPU  user+sys of the daemon's process from /proc/PID/stat: utime+stime+cutime+cstime,
              read before the step and again after the step once the daemon is idle again
              (rtsync: back to its idle thread count; rsync: no child process left, i.e. every
              forked connection process reaped, so its time is in the parent's cutime/cstime;
              rsync's connection process waits for its own forked receiver, so the
              grandchild's time is in there too);
  client CPU  user+sys of the client processes (wait4's rusage, their own children included);
  memory      the daemon's process tree sampled every SAMPLE_MS ms (default 50), plus, for the
              daemon process, VmHWM after resetting it (`echo 5 > /proc/PID/clear_refs`)
              at the start of the step:
                rtsync: one process; "memory for the connections" = VmHWM - VmRSS at idle
                        just before the step (its growth), and the sampled peak of VmRSS;
                rsync:  a process per connection (two for a push: the forked connection
                        process becomes the generator and forks the receiver); "memory for
                        the connections" = peak over the samples of the summed VmRSS of every
                        descendant of the daemon; also the summed USS (Private_Clean +
                        Private_Dirty from smaps_rollup), which leaves out the pages the
                        children share with each other and with the daemon (libc, rsync's
                        text, the parent's heap before fork): RSS overstates what the
                        connections cost, USS understates it slightly.
"""
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
DAEMONS = ("rtsync", "rsync")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


SMALL_FILES = env_int("SMALL_FILES", 100_000)
SMALL_DIRS = env_int("SMALL_DIRS", 100)
BIG_MIB = env_int("BIG_MIB", 1024)
CHANGE_KIB = env_int("CHANGE_KIB", 1024)
CLIENTS = env_int("CLIENTS", 32)
CLIENT_FILES = env_int("CLIENT_FILES", 2000)
MIN_KIB = env_int("MIN_KIB", 1)
MAX_KIB = env_int("MAX_KIB", 8)
SAMPLE_MS = env_int("SAMPLE_MS", 50)
TIMEOUT = env_int("CLIENT_TIMEOUT", 900)


# ---------------------------------------------------------------------------------------------
# data


def make_tree(root, files, dirs, rng):
    per = -(-files // dirs)
    made = 0
    for d in range(dirs):
        os.makedirs(f"{root}/d{d:03}", exist_ok=True)
        for f in range(per):
            if made == files:
                return
            size = rng.randrange(MIN_KIB * 1024, MAX_KIB * 1024 + 1)
            with open(f"{root}/d{d:03}/f{f:05}", "wb") as fh:
                fh.write(rng.randbytes(size))
            made += 1


def gen(work):
    rng = random.Random(7)
    if SMALL_FILES:
        log(f"making {SMALL_FILES} files in {SMALL_DIRS} directories")
        make_tree(f"{work}/src/small", SMALL_FILES, SMALL_DIRS, rng)
    if BIG_MIB:
        log(f"making a {BIG_MIB} MiB file")
        os.makedirs(f"{work}/src/big", exist_ok=True)
        with open(f"{work}/src/big/file", "wb") as fh:
            for _ in range(BIG_MIB):
                fh.write(os.urandom(MIB))
    if CLIENTS:
        log(f"making {CLIENTS} trees of {CLIENT_FILES} files")
        for c in range(CLIENTS):
            make_tree(f"{work}/src/multi/c{c:02}", CLIENT_FILES, max(1, CLIENT_FILES // 100), rng)
    # One second's margin, so that no file's mtime equals the second its copy is made in.
    time.sleep(1.1)


# ---------------------------------------------------------------------------------------------
# /proc


def stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()  # fields from 3 (state) on


def cpu_ticks(pid):
    """utime+stime+cutime+cstime of a process (threads included, reaped children included)."""
    s = stat_fields(pid)
    return int(s[11]) + int(s[12]) + int(s[13]) + int(s[14])


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def kib(v):
    return int(v.split()[0]) * 1024 if v else 0


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def uss_bytes(pid):
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def descendants(root):
    """Every live descendant of root (no /proc/PID/task/*/children on this kernel: ppid scan)."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(stat_fields(name)[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), ()):
            out.append(k)
            todo.append(k)
    return out


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    """Samples a daemon's tree: its own RSS, and the summed RSS/USS of its descendants."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.peak_root = 0
        self.peak_kids_rss = 0
        self.peak_kids_uss = 0
        self.peak_kids = 0
        self.peak_threads = 0
        self.samples = 0

    def take(self):
        try:
            self.peak_root = max(self.peak_root, rss_bytes(self.pid))
            self.peak_threads = max(self.peak_threads, int(status(self.pid)["Threads"]))
        except OSError:
            pass
        rss = uss = n = 0
        for k in descendants(self.pid):
            try:
                r = rss_bytes(k)
                u = uss_bytes(k)
            except OSError:
                continue  # gone meanwhile
            if r == 0:
                continue  # a zombie
            rss, uss, n = rss + r, uss + u, n + 1
        self.peak_kids_rss = max(self.peak_kids_rss, rss)
        self.peak_kids_uss = max(self.peak_kids_uss, uss)
        self.peak_kids = max(self.peak_kids, n)
        self.samples += 1

    def run(self):
        while not self.stop.is_set():
            self.take()
            self.stop.wait(SAMPLE_MS / 1000)
        self.take()


# ---------------------------------------------------------------------------------------------
# a step: clients against one daemon


class Daemon:
    def __init__(self, name, port, pid):
        self.name, self.port, self.pid = name, int(port), int(pid)
        self.idle_threads = None

    def url(self, module, sub=""):
        return f"rsync://127.0.0.1:{self.port}/{module}-{self.name}/{sub}"

    def threads(self):
        return int(status(self.pid)["Threads"])

    def idle(self):
        if self.name == "rtsync":
            return self.threads() <= self.idle_threads
        return not descendants(self.pid)

    def wait_idle(self, limit=60.0):
        t0 = time.monotonic()
        while not self.idle():
            if time.monotonic() - t0 > limit:
                log(f"{self.name} daemon still busy {limit:.0f} s after its clients ended")
                return time.monotonic() - t0
            time.sleep(0.01)
        return time.monotonic() - t0


def run_clients(daemon, cmds, outdir, tag):
    """Runs the commands at once against `daemon`; returns the step's measurements."""
    settle0 = daemon.wait_idle()
    st = status(daemon.pid)
    idle_rss = kib(st["VmRSS"])
    hwm_reset = reset_hwm(daemon.pid)
    cpu0 = cpu_ticks(daemon.pid)
    sampler = Sampler(daemon.pid)
    sampler.start()
    procs = []
    t0 = time.monotonic()
    for i, cmd in enumerate(cmds):
        out = open(f"{outdir}/{tag}-{i:02}.out", "wb")
        procs.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out, cmd))
    codes, ucpu, ends = [], 0.0, []
    deadline = t0 + TIMEOUT
    for p, out, cmd in procs:
        while True:
            pid, code, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, code, ru = os.wait4(p.pid, 0)
                log(f"timed out: {' '.join(cmd)}")
                break
            time.sleep(0.005)
        p.returncode = os.waitstatus_to_exitcode(code)
        ends.append(time.monotonic())
        codes.append(p.returncode)
        ucpu += ru.ru_utime + ru.ru_stime
        out.close()
    wall = max(ends) - t0
    settle = daemon.wait_idle()
    sampler.stop.set()
    sampler.join()
    cpu1 = cpu_ticks(daemon.pid)
    st = status(daemon.pid)
    hwm, rss_after = kib(st["VmHWM"]), kib(st["VmRSS"])
    n = len(cmds)
    r = {
        "daemon": daemon.name,
        "clients": n,
        "wall": wall,
        "daemon_cpu": (cpu1 - cpu0) / TICK,
        "client_cpu": ucpu,
        "failures": sum(1 for c in codes if c != 0),
        "codes": sorted(set(codes)),
        "idle_rss": idle_rss,
        "rss_after": rss_after,
        "hwm": hwm if hwm_reset else None,
        "peak_rss": sampler.peak_root,
        "kids_rss": sampler.peak_kids_rss,
        "kids_uss": sampler.peak_kids_uss,
        "kids": sampler.peak_kids,
        "threads": sampler.peak_threads,
        "samples": sampler.samples,
        "settle": settle,
        "settle_before": settle0,
    }
    if daemon.name == "rtsync":
        grow = (max(hwm, sampler.peak_root) if hwm_reset else sampler.peak_root) - idle_rss
        r["conn_mem"] = max(grow, 0)
        r["conn_mem_uss"] = max(grow, 0)
    else:
        r["conn_mem"] = sampler.peak_kids_rss
        r["conn_mem_uss"] = sampler.peak_kids_uss
    if r["failures"]:
        for i, c in enumerate(codes):
            if c:
                with open(f"{outdir}/{tag}-{i:02}.out", "rb") as f:
                    text = f.read().decode(errors="replace")
                r.setdefault("errors", []).append(
                    {"cmd": " ".join(procs[i][2]), "exit": c, "output": text[-3000:]})
                log(f"FAILED ({c}): {' '.join(procs[i][2])}\n{text[-3000:]}")
    stats = {}
    with open(f"{outdir}/{tag}-00.out", "rb") as f:
        text = f.read().decode(errors="replace")
    for key, pat in (("literal", r"Literal data: ([\d,]+)"), ("matched", r"Matched data: ([\d,]+)"),
                     ("transferred", r"Number of regular files transferred: ([\d,]+)")):
        m = re.search(pat, text)
        if m:
            stats[key] = int(m.group(1).replace(",", ""))
    r.update(stats)
    return r


def check_tree(src, dst):
    """`rsync -anic --delete`: what would still differ (by checksum and -a's metadata)."""
    p = subprocess.run(["rsync", "-anic", "--delete", f"{src}/", f"{dst}/"],
                       capture_output=True, text=True)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if p.returncode:
        lines.append(f"(rsync -anic exit {p.returncode}: {p.stderr.strip()})")
    return lines


def check_cmp(a, b):
    p = subprocess.run(["cmp", a, b], capture_output=True, text=True)
    return [] if p.returncode == 0 else [(p.stdout + p.stderr).strip() or "cmp failed"]


def empty(path):
    subprocess.run(["rm", "-rf", path], check=True)
    os.makedirs(path)


# ---------------------------------------------------------------------------------------------
# cases


def case(name, work, rnd, daemons, out):
    order = list(daemons) if rnd % 2 else list(reversed(daemons))
    logdir = f"{work}/out/{name}-r{rnd}"
    os.makedirs(logdir, exist_ok=True)
    results = []

    def emit(step, d, r, problems):
        r.update(case=name, step=step, round=rnd, problems=problems)
        results.append(r)
        with open(out, "a") as f:
            f.write(json.dumps(r) + "\n")
        extra = f", literal {r['literal']:,}" if "literal" in r else ""
        log(f"{step} -> {d.name}: wall {r['wall']:.2f} s, daemon CPU {r['daemon_cpu']:.2f} s, "
            f"client CPU {r['client_cpu']:.2f} s, conn mem {r['conn_mem'] / MIB:.1f} MiB, "
            f"failures {r['failures']}{extra}"
            + (f", PROBLEMS: {problems[:5]}" if problems else ""))

    mod = {d.name: f"{work}/m/{name}-{d.name}" for d in daemons}
    for d in daemons:
        empty(mod[d.name])
    if name == "small":
        src = f"{work}/src/small"
        step = f"{SMALL_FILES:,} files, initial push"
        for d in order:
            r = run_clients(d, [["rsync", "-a", "--stats", f"{src}/", d.url("small")]],
                            logdir, f"{d.name}-initial")
            emit(step, d, r, check_tree(src, mod[d.name]))
        step = f"{SMALL_FILES:,} files, no-change push"
        for d in order:
            r = run_clients(d, [["rsync", "-a", "--stats", f"{src}/", d.url("small")]],
                            logdir, f"{d.name}-nochange")
            problems = check_tree(src, mod[d.name])
            if r.get("transferred"):
                problems.append(f"{r['transferred']} files transferred on a no-change push")
            emit(step, d, r, problems)
        step = f"{SMALL_FILES:,} files, pull"
        for d in order:
            dest = f"{work}/pull-{d.name}"
            empty(dest)
            r = run_clients(d, [["rsync", "-a", "--stats", d.url("small"), f"{dest}/"]],
                            logdir, f"{d.name}-pull")
            emit(step, d, r, check_tree(src, dest))
            subprocess.run(["rm", "-rf", dest], check=True)
    elif name == "big":
        src = f"{work}/src/big"
        step = f"{BIG_MIB} MiB file, initial push"
        for d in order:
            r = run_clients(d, [["rsync", "-a", "--stats", f"{src}/", d.url("big")]],
                            logdir, f"{d.name}-initial")
            emit(step, d, r, check_cmp(f"{src}/file", f"{mod[d.name]}/file"))
        size = os.path.getsize(f"{src}/file")
        with open(f"{src}/file", "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(CHANGE_KIB * 1024))
        st = os.stat(f"{src}/file")
        os.utime(f"{src}/file", ns=(st.st_atime_ns, st.st_mtime_ns + 3600 * 10**9))
        step = f"{BIG_MIB} MiB file, {CHANGE_KIB} KiB changed, push"
        for d in order:
            r = run_clients(d, [["rsync", "-a", "--stats", f"{src}/", d.url("big")]],
                            logdir, f"{d.name}-delta")
            emit(step, d, r, check_cmp(f"{src}/file", f"{mod[d.name]}/file")
                 + check_tree(src, mod[d.name]))
    elif name == "multi":
        src = f"{work}/src/multi"
        clients = sorted(os.listdir(src))
        step = f"{len(clients)} clients at once, {CLIENT_FILES:,} files each, push"
        for d in order:
            cmds = [["rsync", "-a", "--stats", f"{src}/{c}/", d.url("multi", f"{c}/")]
                    for c in clients]
            r = run_clients(d, cmds, logdir, f"{d.name}-multi")
            r.pop("literal", None)
            r.pop("transferred", None)
            # The clients push into subdirectories: the module's own directory is none of theirs.
            emit(step, d, r, [l for l in check_tree(src, mod[d.name])
                              if not l.endswith(" ./")])
    for d in daemons:
        subprocess.run(["rm", "-rf", mod[d.name]], check=True)
    return results


# ---------------------------------------------------------------------------------------------
# report


def report(path):
    rows = {}
    for line in open(path):
        r = json.loads(line)
        rows.setdefault(r["step"], {}).setdefault(r["daemon"], []).append(r)
    med = lambda rs, k: statistics.median(x[k] for x in rs)
    print("| case | daemon | wall s (range) | daemon CPU s | client CPU s | daemon memory for the "
          "connection(s) MiB | per connection MiB | failed clients | check |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for step, by in rows.items():
        for d in DAEMONS:
            rs = by.get(d)
            if not rs:
                continue
            n = rs[0]["clients"]
            mem = med(rs, "conn_mem") / MIB
            if d == "rsync":
                uss = med(rs, "conn_mem_uss") / MIB
                mem_s = f"{mem:.1f} RSS / {uss:.1f} USS ({max(x['kids'] for x in rs)} processes)"
                per_s = f"{mem / n:.2f} RSS / {uss / n:.2f} USS"
            else:
                mem_s = f"{mem:.1f} (RSS idle before {med(rs, 'idle_rss') / MIB:.1f}, after " \
                        f"{med(rs, 'rss_after') / MIB:.1f}; {max(x['threads'] for x in rs)} threads)"
                per_s = f"{mem / n:.2f}"
            lit = ""
            if "literal" in rs[0]:
                lit = f"; literal {int(med(rs, 'literal')):,} B"
            probs = sum(len(x["problems"]) for x in rs)
            check = "ok" if not probs else f"{probs} difference(s)"
            wall = f"{med(rs, 'wall'):.2f}"
            if len(rs) > 1:
                wall += f" ({min(x['wall'] for x in rs):.2f}-{max(x['wall'] for x in rs):.2f})"
            print(f"| {step} | {d} | {wall} | {med(rs, 'daemon_cpu'):.2f} | "
                  f"{med(rs, 'client_cpu'):.2f} | {mem_s} | {per_s} | "
                  f"{sum(x['failures'] for x in rs)}/{n * len(rs)} | {check}{lit} |")
        if "rtsync" in by and "rsync" in by:
            a, b = by["rtsync"], by["rsync"]
            q = lambda k: med(a, k) / med(b, k) if med(b, k) else float("nan")
            ratios.append((step, q("wall"), q("daemon_cpu"), q("client_cpu"),
                           q("conn_mem"), med(a, "conn_mem") / med(b, "conn_mem_uss")
                           if med(b, "conn_mem_uss") else float("nan")))
    print()
    print("Ratios rtsync / rsync (below 1: rtsync better):")
    print()
    print("| case | wall | daemon CPU | client CPU | memory vs rsync's RSS | memory vs rsync's USS |")
    print("|---|---|---|---|---|---|")
    for step, w, c, cc, m, mu in ratios:
        print(f"| {step} | {w:.2f} | {c:.2f} | {cc:.2f} | {m:.2f} | {mu:.2f} |")
    problems = [(r["step"], r["daemon"], p) for by in rows.values() for rs in by.values()
                for r in rs for p in r["problems"][:10]]
    errors = [(r["step"], r["daemon"], e) for by in rows.values() for rs in by.values()
              for r in rs for e in r.get("errors", [])[:3]]
    if problems or errors:
        print()
        for step, d, p in problems:
            print(f"- {step}, {d}: difference: `{p}`")
        for step, d, e in errors:
            print(f"- {step}, {d}: `{e['cmd']}` exited {e['exit']}:\n```\n{e['output']}\n```")


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd == "case":
        name, work, rnd, out = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        rt = Daemon("rtsync", sys.argv[6], sys.argv[7])
        rs = Daemon("rsync", sys.argv[8], sys.argv[9])
        rt.idle_threads = rt.threads()
        case(name, work, rnd, (rt, rs), out)
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(f"unknown sub-command {cmd}")


if __name__ == "__main__":
    main()
