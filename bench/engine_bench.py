#!/usr/bin/env python3
"""Engine benchmark: `rtsync run` to an rtsync daemon and to a stock rsync daemon, against the
tutorials' inotifywait|rsync loop and lsyncd.

Called by bench/engine.sh, which builds rtsync and starts two daemons: a stock `rsync --daemon`
with a module per replicator that pushes to it (rtsync, loop, lsyncd) and an `rtsync daemon`
with the module rtsync-peer, each (as root) in a network namespace of its own behind a veth
pair, and passes each one's address, port, pid and the host end of its veth here
(--daemon KIND=ADDR:PORT:PID:IFACE).

Replicators (each watches its own source tree and pushes into its own module):
  rtsync-peer  `rtsync run -v --state-dir=TMP SRC rsync://ADDR:PORT/rtsync-peer/` to the
          `rtsync daemon`: rtsync at both ends, where rtsync's own fast path (one persistent
          pipelined connection, renames applied as renames) applies once both ends have it;
          until then it behaves as `rtsync` does. Its resting process count (see CPU below) is
          what it has once ready, as that connection may live in a process of its own.
  rtsync  `rtsync run -v --state-dir=TMP SRC rsync://ADDR:PORT/rtsync/` to the stock daemon
  loop    `inotifywait -mrq -e close_write,create,delete,move,attrib --format '%w%f' SRC |
           while read f; do rsync -az --delete SRC/ rsync://ADDR:PORT/loop/; done`
          (started after one `rsync -az --delete` of the tree, as the tutorials do)
  lsyncd  Debian's lsyncd, `default.rsync`, `delay = 1`, `archive = true`, target
          `rsync://ADDR:PORT/lsyncd/`, `nodaemon = true`, logging to a file.

Phases, one replicator at a time (the others sit idle on their own, unchanged trees), the order
of the replicators rotating with each round. Every phase starts from an empty source and an
empty module, its own fresh replicator process, whatever the phase needs written first, and
waits until the replicator is watching every directory, the module is identical to the
source and the replicator has been at rest for a second (as defined under CPU below). Then:
  stream-big-R    files of 10-300 KB written at R files/s for STREAM_SECS seconds;
  stream-small-R  files of 1-4 KB written the same way;
  burst           BURST_FILES files of 100 B-4 KB in BURST_DIRS new directories, written as fast
                  as one Python loop can;
  rename          a directory holding RENAME_FILES files renamed (`mv a b`);
  tree-change     one file rewritten in a tree of TREE_FILES files (100 B-4 KB, in 100
                  directories), TREE_CHANGES times, each once everything is quiet again.

Content: each file is a unique token, a slice of a 64 MiB pool of random bytes at a random
offset, and the token again: incompressible, and only seldom (a few % of files, in part)
within a compressor's window (zstd's 2 MiB or so, for the loop's `rsync -z`) of an earlier
copy of the same bytes.

Measurement. A generator process writes the files and records, for each, the time its close()
returned (CLOCK_MONOTONIC). A checker process watches the module's directory tree with inotify
(a local path: the daemon is on loopback) and, whenever a path changes there (or its record
comes in), records the first time that file's content equals the source's: every generated file
carries a unique 32-byte token at its start and its end, and size + both tokens must match
(rsync and rtsync write to a temporary name and rename, so a name that is present is complete).
Its cost grows with what arrives, not with what is still missing, so a replicator that falls
behind is not slowed further by the measurement; a sweep of everything pending once a second is
a safety net (what it finds is counted as found_by_sweep in the JSON; it should be 0).
Lag = arrival - close. "done" = last arrival - last write of the phase (for a rename: - the
rename; the old directory must be gone too). A file not there within ARRIVAL_TIMEOUT seconds of
the end of the phase is counted as missing, and after every phase the replicator is stopped and
the module compared with the source in full (paths, types, sizes, MD5 of the content): every
difference is reported as a divergence.

CPU: user+sys of the replicator's process tree (the root's utime+stime+cutime+cstime plus those
of every live descendant, from /proc/PID/stat, sampled every 50 ms), from the start of the phase
until the replicator has been at rest for a second (no process in its tree beyond its resting
ones, i.e. no transfer running, and it and its daemon together used at most 0.02 CPU s) or
DRAIN_CAP seconds after the last file arrived: a replicator still busy then (the loop working
through its queue of events) is stopped and marked "busy". The CPU of the replicator's daemon
(its process and threads) over the same window is reported apart (the stock daemon serves
three replicators, but only one replicator works at a time). RSS: the peak of the sum of the RSS
of the tree's live processes over the same samples, and the largest VmHWM (peak RSS since exec)
of any process of the tree seen in them (children that live less than 50 ms may be missed; the
long-lived process's VmHWM includes its start-up). wait4's ru_maxrss is no use here: Linux
carries the parent's (Python's) RSS across fork and exec into it.

Bytes on the wire: each daemon lives in its own network namespace, reachable only through its
veth pair, so every byte between a replicator and its daemon crosses the host end of that pair
and nothing else does (only one replicator runs at a time; IPv6 is off on the pair, so no
router solicitations; an ARP exchange now and then is all the noise there is).
/sys/class/net/VETH/statistics/{tx,rx}_bytes are read when the phase starts and when the
replicator is at rest again (the CPU window above): "to target" is what the replicator side
sent, "from target" what the daemon sent back, both as the veth counts them: IP packets with
their TCP/IP headers and a 14-byte Ethernet header each, a TSO/GSO super-packet (the veth
keeps them whole) counted once, so the headers of a bulk stream are under-counted against a
1500-byte-MTU wire by roughly 66 bytes per 1448 (under 5 %); figures are decimal MB (10^6).
Connections made and closed within the phase are all counted, which reading per-socket
counters (ss -ti) could not promise. The veth's 1500-byte MTU and the namespace crossing make
the transfers a little more costly than over loopback (the earlier runs of this benchmark);
every replicator pays it alike. Without a namespace (not root, or NETNS=0) the daemons listen
on 127.0.0.1 and no bytes are reported.

Goals: after the tables, the issue's goal figures for rtsync-peer are printed as met or not:
p99 lag under 0.2 s in stream-big-1000 (1,000 files/s of 10-300 KB files), and the rename
of a directory of 5,000 files (RENAME_FILES=5000) done in under 0.2 s with under 1 MB on the
wire (both directions).

Prints Markdown tables (results, ratios) on stdout; progress on stderr; JSON to --json.
"""
import argparse
import ctypes
import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TOKEN = 32


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_list(name, default):
    return [int(x) for x in os.environ.get(name, default).replace(",", " ").split()]


# ---------------------------------------------------------------------------------------------
# /proc: process trees, CPU, RSS, inotify watches


def proc_table():
    """pid -> (ppid, cpu ticks incl. reaped children, rss pages) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(b")") + 2:].split()
        # rest[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17, rss field 24.
        ppid = int(rest[1])
        cpu = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        table[int(name)] = (ppid, cpu, int(rest[21]))
    return table


def tree_of(table, root):
    """root and all its live descendants."""
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def vm_hwm(pid):
    """Peak resident set of one process since its exec, in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def inotify_watches(pids):
    n = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    n += sum(1 for line in f if line.startswith("inotify wd:"))
            except OSError:
                pass
    return n


def wire_counts(iface):
    """(bytes sent, bytes received, packets sent, packets received) so far by the host end of
    a veth, or None without one."""
    if not iface:
        return None
    out = []
    for k in ("tx_bytes", "rx_bytes", "tx_packets", "rx_packets"):
        with open(f"/sys/class/net/{iface}/statistics/{k}") as f:
            out.append(int(f.read()))
    return out


class Sampler(threading.Thread):
    """Samples CPU and RSS of the active replicator's tree and the daemon's, every 50 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.daemon_pid = None  # the daemon of the replicator watched
        self.root = None
        self.lock = threading.Lock()
        self.base = 1  # processes in the replicator's tree when it has nothing to do
        # (t, replicator cpu s, daemon cpu s, replicator tree rss bytes, processes in the tree)
        self.samples = []
        self.hwm = 0  # the largest VmHWM seen in the replicator's tree
        self.stopped = False

    def take(self):
        table = proc_table()
        t = time.monotonic()
        rcpu = rrss = hwm = nproc = 0
        if self.root is not None:
            for pid in tree_of(table, self.root):
                nproc += 1
                rcpu += table[pid][1]
                rrss += table[pid][2]
                hwm = max(hwm, vm_hwm(pid))
        dcpu = sum(table[p][1] for p in tree_of(table, self.daemon_pid)) \
            if self.daemon_pid is not None else 0
        s = (t, rcpu / TICK, dcpu / TICK, rrss * PAGE, nproc)
        with self.lock:
            self.samples.append(s)
            self.hwm = max(self.hwm, hwm)
        return s

    def run(self):
        while not self.stopped:
            self.take()
            time.sleep(0.05)

    def watch(self, root, base=1, daemon_pid=None):
        with self.lock:
            self.root = root
            self.base = base
            self.daemon_pid = daemon_pid
            self.samples = []
            self.hwm = 0

    def since(self, t0):
        with self.lock:
            return [s for s in self.samples if s[0] >= t0]

    def idle_for(self, quiet, limit=0.02):
        """Whether, for the last `quiet` seconds, the replicator ran no child beyond its
        resting processes (no transfer) and it and the daemon used at most `limit` CPU s.
        With no resting count known yet (base None), only the CPU counts."""
        now = time.monotonic()
        with self.lock:
            recent = [s for s in self.samples if s[0] >= now - quiet - 0.06]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < quiet:
            return False
        if self.base is not None and any(s[4] > self.base for s in recent):
            return False
        return (recent[-1][1] - recent[0][1]) + (recent[-1][2] - recent[0][2]) <= limit


# ---------------------------------------------------------------------------------------------
# File content with tokens, trees, comparison

POOL = None
# Content is cut from this much random data. It must be far larger than any compressor's
# window: from a 1 MiB pool, `rsync -z` (zstd, a window of megabytes) found every file's body
# earlier in its stream and sent a quarter of the bytes, a figure real data would not give.
POOL_SIZE = 64 << 20


def pool():
    global POOL
    if POOL is None:
        POOL = os.urandom(POOL_SIZE)
    return POOL


def make_content(rng, tag, size):
    """size bytes: a unique 32-byte token, random bytes, the token again, as the three parts
    (not joined: at 2,000 files/s copying them into one buffer costs the writer its rate)."""
    size = max(size, 2 * TOKEN)
    tok = f"{tag}/{rng.getrandbits(64):016x}".encode()[:TOKEN - 1].ljust(TOKEN - 1) + b"\n"
    off = rng.randrange(len(pool()) - size)
    body = memoryview(pool())[off:off + size - 2 * TOKEN]
    return tok, (tok, body, tok)


def content_len(parts):
    return sum(len(p) for p in parts)


def write_file(path, parts):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        wrote = os.writev(fd, parts)
        if wrote < content_len(parts):
            os.write(fd, memoryview(b"".join(parts))[wrote:])
    finally:
        os.close(fd)
    return time.monotonic()


def wipe(path):
    if os.path.lexists(path):
        shutil.rmtree(path)
    os.makedirs(path)


def digest(root):
    """rel path -> ('d',) | ('l', target) | ('f', size, md5) for everything below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            rel = os.path.normpath(os.path.join(rel_dir, d))
            out[rel] = ("l", os.readlink(p)) if os.path.islink(p) else ("d",)
        for name in filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
                continue
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                out[rel] = ("?",)
                continue
            out[rel] = ("f", len(data), hashlib.md5(data).hexdigest())
    return out


def compare(src_digest, dst_root):
    """Differences between a source digest and a target tree, as a short list of strings."""
    dst = digest(dst_root)
    missing = sorted(set(src_digest) - set(dst))
    extra = sorted(set(dst) - set(src_digest))
    differ = sorted(p for p in set(src_digest) & set(dst) if src_digest[p] != dst[p])
    out = []
    for what, paths in (("missing", missing), ("extra", extra), ("different", differ)):
        if paths:
            out.append(f"{len(paths)} {what} (e.g. {', '.join(paths[:3])})")
    return out


def count_entries(root):
    n = 0
    for _, dirnames, filenames in os.walk(root):
        n += len(dirnames) + len(filenames)
    return n


# ---------------------------------------------------------------------------------------------
# Generator and checker processes
#
# A record is (rel, t0, size, token) for a file that must arrive with that size and token at
# both ends, or (rel, t0, None, None) for a path that must be gone.


def send_batches(conn, records, flush_every=0.01):
    """Accumulates records and sends them in batches; returns a function to add one."""
    state = {"buf": [], "at": time.monotonic()}

    def add(rec=None, final=False):
        if rec is not None:
            state["buf"].append(rec)
        now = time.monotonic()
        if state["buf"] and (final or now - state["at"] >= flush_every):
            conn.send(("recs", state["buf"]))
            state["buf"] = []
            state["at"] = now

    return add


def gen_stream(conn, src, rel_dir, ndirs, rate, secs, lo, hi, seed):
    """rate files/s for secs seconds, round robin over ndirs directories."""
    rng = random.Random(seed)
    pool()  # before the clock starts
    add = send_batches(conn, None)
    n = int(rate * secs)
    t_start = time.monotonic() + 0.05
    late = 0.0
    for i in range(n):
        due = t_start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        rel = f"{rel_dir}/d{i % ndirs:02}/f{i:06}"
        tok, data = make_content(rng, rel, rng.randint(lo, hi))
        t = write_file(os.path.join(src, rel), data)
        add((rel, t, content_len(data), tok))
    add(final=True)
    t_end = time.monotonic()
    conn.send(("end", t_end, {"files": n, "achieved_rate": n / max(t_end - t_start, 1e-9),
                              "max_late_s": late}))


def gen_burst(conn, src, rel_dir, ndirs, nfiles, seed):
    """nfiles small files in ndirs new directories, as fast as possible (like an untar)."""
    rng = random.Random(seed)
    pool()  # before the clock starts
    add = send_batches(conn, None)
    per = math.ceil(nfiles / ndirs)
    t_start = time.monotonic()
    for i in range(nfiles):
        d = f"{rel_dir}/d{i // per:03}"
        if i % per == 0:
            os.makedirs(os.path.join(src, d))
        rel = f"{d}/f{i:05}"
        tok, data = make_content(rng, rel, rng.randint(100, 4000))
        t = write_file(os.path.join(src, rel), data)
        add((rel, t, content_len(data), tok))
    add(final=True)
    t_end = time.monotonic()
    conn.send(("end", t_end, {"files": nfiles, "write_s": t_end - t_start}))


def gen_rename(conn, src, old, new):
    """Renames directory old to new: every file must show up under new, and old must go."""
    files = []
    for name in sorted(os.listdir(os.path.join(src, old))):
        p = os.path.join(src, old, name)
        with open(p, "rb") as f:
            tok = f.read(TOKEN)
        files.append((name, os.path.getsize(p), tok))
    os.rename(os.path.join(src, old), os.path.join(src, new))
    t = time.monotonic()
    recs = [(f"{new}/{name}", t, size, tok) for name, size, tok in files]
    recs.append((old, t, None, None))
    conn.send(("recs", recs))
    conn.send(("end", t, {"files": len(files)}))


def gen_change(conn, src, rel, seed):
    """Rewrites one existing file in place with new content (and usually a new size)."""
    rng = random.Random(seed)
    tok, data = make_content(rng, f"{rel}@{seed}", rng.randint(100, 4000))
    t = write_file(os.path.join(src, rel), data)
    conn.send(("recs", [(rel, t, content_len(data), tok)]))
    conn.send(("end", t, {"files": 1}))


def arrived(dst, rec):
    rel, _, size, tok = rec
    path = os.path.join(dst, rel)
    if size is None:
        return not os.path.lexists(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size != size:
            return False
        return os.pread(fd, TOKEN, 0) == tok and os.pread(fd, TOKEN, size - TOKEN) == tok
    except OSError:
        return False
    finally:
        os.close(fd)


IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x8, 0x40, 0x80, 0x100, 0x200
IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000


class TargetWatch:
    """inotify on every directory of a target tree: which paths just changed there."""

    MASK = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE

    def __init__(self, dst):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dst = dst
        self.dirs = {}  # watch descriptor -> directory relative to dst ("" for dst)
        self.add_tree("")

    def fileno(self):
        return self.fd

    def add_tree(self, rel):
        """Watches rel and every directory below it; returns every path found below it."""
        path = os.path.join(self.dst, rel) if rel else self.dst
        # Watch first, then list: what appears in between is both listed and reported.
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), self.MASK)
        if wd >= 0:
            self.dirs[wd] = rel
        found = []
        try:
            entries = list(os.scandir(path))
        except OSError:
            return found
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            found.append(r)
            if e.is_dir(follow_symlinks=False):
                found += self.add_tree(r)
        return found

    def read(self):
        """(paths that changed since the last call, whether events were lost)."""
        out, overflow = [], False
        while True:
            try:
                buf = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            i = 0
            while i < len(buf):
                wd, mask, _cookie, size = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + size].split(b"\0", 1)[0]
                i += 16 + size
                if mask & IN_Q_OVERFLOW:
                    overflow = True
                    continue
                if mask & IN_IGNORED:
                    self.dirs.pop(wd, None)
                    continue
                rel = self.dirs.get(wd)
                if rel is None or not name:
                    continue
                name = os.fsdecode(name)
                r = f"{rel}/{name}" if rel else name
                out.append(r)
                if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                    out += self.add_tree(r)
        return out, overflow


def checker(conn, result, dst, timeout, sweep_every=1.0):
    """Watches dst (inotify) and checks each record when its path changes there, or when the
    record comes in; a full sweep of what is still pending every `sweep_every` s is only a
    safety net (arrivals it finds are counted: there should be none). Ends when everything
    arrived, or `timeout` s after the end."""
    tw = TargetWatch(dst)
    result.send("ready")
    pending = {}
    lags = []
    arrivals = []  # (close or change time, lag) per file
    t_end = info = None
    last_arrival = None
    next_sweep = time.monotonic() + sweep_every
    overflows = 0
    # Found by a sweep before their event was read: cleared when the event shows up after all.
    suspects = set()
    while True:
        fresh = []
        while conn.poll():
            msg = conn.recv()
            if msg[0] == "recs":
                for rec in msg[1]:
                    pending[rec[0]] = rec
                    fresh.append(rec[0])
            else:
                _, t_end, info = msg
        changed, overflow = tw.read()
        overflows += overflow
        suspects.difference_update(changed)
        now = time.monotonic()
        sweep = overflow or now >= next_sweep
        if sweep:
            next_sweep = now + sweep_every
            candidates = list(pending)
        else:
            candidates = fresh + changed
        for rel in candidates:
            rec = pending.get(rel)
            if rec is not None and arrived(dst, rec):
                now = time.monotonic()
                del pending[rel]
                lags.append(now - rec[1])
                arrivals.append((rec[1], now - rec[1]))
                last_arrival = now if last_arrival is None else max(last_arrival, now)
                if sweep and rel not in fresh and rel not in changed:
                    suspects.add(rel)
        now = time.monotonic()
        if t_end is not None and not pending:
            break
        if t_end is not None and now > t_end + timeout:
            break
        select.select([conn, tw], [], [], max(0.0, next_sweep - now))
    time.sleep(0.05)
    suspects.difference_update(tw.read()[0])
    os.close(tw.fd)
    info = dict(info or {}, found_by_sweep=len(suspects), checker_overflows=overflows)
    result.send({
        "lags": lags,
        "arrivals": sorted(arrivals),
        "missing": len(pending),
        "missing_examples": sorted(pending)[:5],
        "t_end": t_end,
        "done": None if pending or last_arrival is None else max(0.0, last_arrival - t_end),
        "info": info,
    })


# ---------------------------------------------------------------------------------------------
# Replicators


class Replicator:
    name = "?"
    daemon = "rsync"  # which daemon it pushes to: "rsync" (stock) or "rtsync"
    # Processes of its tree while it has nothing to do; None: as many as it has once ready.
    resting = 1
    # Log lines that are routine; every other line of the phase's log is reported.
    routine = ()

    def __init__(self, cfg):
        self.cfg = cfg
        self.src = os.path.join(cfg.work, "src", self.name)
        self.dst = os.path.join(cfg.work, "dst", self.name)
        self.target = cfg.daemons[self.daemon]
        self.url = f"rsync://{self.target['addr']}:{self.target['port']}/{self.name}/"
        self.proc = None
        self.logf = None
        self.nstart = 0

    def command(self):
        raise NotImplementedError

    def before_start(self):
        pass

    def start(self):
        self.nstart += 1
        self.before_start()
        self.logf = open(os.path.join(self.cfg.logs, f"{self.name}.log"), "ab")
        self.logf.write(f"\n==== start {self.nstart} ====\n".encode())
        self.logf.flush()
        self.log_from = self.logf.tell()
        # Its own session, so that nothing it starts gets our terminal's signals.
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc.pid

    def tree(self):
        return tree_of(proc_table(), self.proc.pid) if self.proc else []

    def terminate(self):
        """Asks the process tree to stop; returns the pids to kill if it does not."""
        pids = self.tree()
        os.kill(self.proc.pid, signal.SIGTERM)
        return pids

    def stop(self):
        """Stops it (only our own processes, by pid) and returns wait4's rusage."""
        if self.proc is None:
            return None
        pids = []
        try:
            pids = self.terminate()
        except ProcessLookupError:
            pass
        ru = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            log(f"{self.name}: did not stop within 15 s, killing it")
            os.kill(self.proc.pid, signal.SIGKILL)
            _, _, ru = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0  # reaped by wait4 above: keep Popen from waiting again
        # Whatever of its tree outlived it (orphans), by pid.
        table = proc_table()
        for pid in pids:
            if pid != self.proc.pid and pid in table:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None
        self.logf.close()
        return ru

    def log_notes(self):
        """The lines of this start's log that are not routine."""
        with open(self.logf.name, "rb") as f:
            f.seek(self.log_from)
            lines = f.read().decode(errors="replace").splitlines()
        return [ln.strip() for ln in lines
                if ln.strip() and not any(r in ln for r in self.routine)]


class Rtsync(Replicator):
    name = "rtsync"
    routine = (" sent, ", "rtsync run: watching ", "rtsync run: stopped;")

    def before_start(self):
        self.state = os.path.join(self.cfg.work, "state", f"{self.name}-{self.nstart}")
        wipe(self.state)

    def command(self):
        # RTSYNC_RUN_ARGS: more options for `rtsync run`, e.g. "-n 1" (one stream connection).
        extra = shlex.split(os.environ.get("RTSYNC_RUN_ARGS", ""))
        return [self.cfg.rtsync, "run", "-v", *extra, f"--state-dir={self.state}", self.src,
                self.url]


class RtsyncPeer(Rtsync):
    """The same `rtsync run`, to an `rtsync daemon`: the rtsync-to-rtsync path (one
    persistent connection, renames as renames) once both ends have it; its resting process
    count is learnt once it is ready, as that connection may live in a process of its own."""
    name = "rtsync-peer"
    daemon = "rtsync"
    resting = None


class Loop(Replicator):
    name = "loop"
    resting = 3  # bash, inotifywait, the subshell running the while loop
    routine = ("Terminated",)

    def before_start(self):
        # The tutorials sync once by hand before starting the loop.
        subprocess.run(["rsync", "-az", "--delete", self.src + "/", self.url], check=True)

    def command(self):
        s = shlex.quote(self.src)
        loop = (f"inotifywait -mrq -e close_write,create,delete,move,attrib --format '%w%f' {s}"
                f" | while read f; do rsync -az --delete {s}/ {self.url}; done")
        return ["bash", "-c", loop]

    def terminate(self):
        # bash waits for its pipeline: stop inotifywait and the while loop (and its rsync), and
        # bash exits by itself.
        pids = self.tree()
        for pid in pids:
            if pid != self.proc.pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return pids


class Lsyncd(Replicator):
    name = "lsyncd"
    # Its stdout: the normal log lines and the path lists of each rsync call.
    routine = ("Normal: --- Startup ---", "Normal: recursive startup rsync:",
               "Normal: Startup of", "Normal: Calling rsync with filter-list",
               "Normal: Finished a list after exitcode: 0", "Normal: --- TERM signal",
               "Normal: Finished (list): 0")

    def log_notes(self):
        return [ln for ln in super().log_notes() if not ln.startswith("/")]

    def command(self):
        conf = os.path.join(self.cfg.work, "lsyncd.conf.lua")
        logfile = os.path.join(self.cfg.logs, "lsyncd.logfile")
        with open(conf, "w") as f:
            f.write(f"""settings {{
    logfile = "{logfile}",
    nodaemon = true,
}}
sync {{
    default.rsync,
    source = "{self.src}",
    target = "{self.url}",
    delay = 1,
    rsync = {{ archive = true }},
}}
""")
        return ["lsyncd", conf]


REPLICATORS = {"rtsync-peer": RtsyncPeer, "rtsync": Rtsync, "loop": Loop, "lsyncd": Lsyncd}


# ---------------------------------------------------------------------------------------------
# Phases


class Phase:
    """One workload: prepare() writes what must exist before the replicator starts, run()
    drives the generator and returns the checker's results."""

    name = "?"
    src_digest = None

    def prepare(self, src):
        pass

    def expected(self, src):
        return digest(src)

    def run(self, ctx, rep):
        raise NotImplementedError


def run_generator(ctx, dst, target, args, timeout):
    """Starts a checker on dst and a generator target(conn, *args); returns the checker's result."""
    recv, send = ctx.Pipe(duplex=False)
    res_r, res_w = ctx.Pipe(duplex=False)
    chk = ctx.Process(target=checker, args=(recv, res_w, dst, timeout), daemon=True)
    chk.start()
    assert res_r.recv() == "ready"
    gen = ctx.Process(target=target, args=(send,) + tuple(args), daemon=True)
    gen.start()
    gen.join()
    result = res_r.recv()
    chk.join()
    return result


class Stream(Phase):
    def __init__(self, kind, rate, secs, timeout):
        self.kind, self.rate, self.secs, self.timeout = kind, rate, secs, timeout
        self.name = f"stream-{kind}-{rate}"
        self.lo, self.hi = (10_000, 300_000) if kind == "big" else (1_000, 4_000)

    def prepare(self, src):
        for d in range(10):
            os.makedirs(os.path.join(src, "s", f"d{d:02}"))

    def run(self, ctx, rep):
        return run_generator(ctx, rep.dst, gen_stream,
                             (rep.src, "s", 10, self.rate, self.secs, self.lo, self.hi,
                              zlib.crc32(f'{self.name}/{rep.name}'.encode())), self.timeout)


class Burst(Phase):
    name = "burst"

    def __init__(self, files, dirs, timeout):
        self.files, self.dirs, self.timeout = files, dirs, timeout

    def run(self, ctx, rep):
        return run_generator(ctx, rep.dst, gen_burst,
                             (rep.src, "burst", self.dirs, self.files, 7), self.timeout)


class Rename(Phase):
    name = "rename"

    def __init__(self, files, timeout):
        self.files, self.timeout = files, timeout

    def prepare(self, src):
        rng = random.Random(11)
        os.makedirs(os.path.join(src, "a"))
        for i in range(self.files):
            rel = f"a/f{i:05}"
            write_file(os.path.join(src, rel), make_content(rng, rel, rng.randint(1000, 4000))[1])

    def run(self, ctx, rep):
        return run_generator(ctx, rep.dst, gen_rename, (rep.src, "a", "b"), self.timeout)


class TreeChange(Phase):
    name = "tree-change"

    def __init__(self, cfg, files, changes, timeout):
        self.template = os.path.join(cfg.work, "tree-template")
        self.files, self.changes, self.timeout = files, changes, timeout
        self.template_digest = None

    def make_template(self):
        if self.template_digest is not None:
            return
        log(f"making the {self.files}-file template tree")
        rng = random.Random(13)
        per = math.ceil(self.files / 100)
        for i in range(self.files):
            d = os.path.join(self.template, f"d{i // per:03}")
            if i % per == 0:
                os.makedirs(d)
            write_file(os.path.join(d, f"f{i:06}"),
                       make_content(rng, f"t{i}", rng.randint(100, 4000))[1])
        self.template_digest = digest(self.template)
        self.paths = sorted(p for p, v in self.template_digest.items() if v[0] == "f")

    def prepare(self, src):
        self.make_template()
        os.rmdir(src)
        subprocess.run(["cp", "-a", self.template, src], check=True)

    def expected(self, src):
        return self.template_digest

    def run(self, ctx, rep):
        rng = random.Random(zlib.crc32(rep.name.encode()))
        lags, arr, done, missing, examples, by_sweep = [], [], [], 0, [], 0
        for k in range(self.changes):
            if k:
                wait_idle(ctx.sampler, 1.0, 30)
            rel = rng.choice(self.paths)
            r = run_generator(ctx, rep.dst, gen_change, (rep.src, rel, rng.getrandbits(32)),
                              self.timeout)
            lags += r["lags"]
            arr += r["arrivals"]
            by_sweep += r["info"].get("found_by_sweep", 0)
            missing += r["missing"]
            examples += r["missing_examples"]
            if r["done"] is not None:
                done.append(r["done"])
        return {"lags": lags, "arrivals": arr, "missing": missing, "missing_examples": examples[:5],
                "done": max(done) if done and not missing else None,
                "info": {"files": self.changes, "found_by_sweep": by_sweep}}


def wait_idle(sampler, quiet, cap):
    """Waits until nothing used CPU for `quiet` s; False if still busy after `cap` s."""
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        if sampler.idle_for(quiet):
            return True
        time.sleep(0.1)
    return False


def wait_ready(cfg, sampler, rep, expected):
    """Watching every directory, the module identical to the source, and quiet."""
    ndirs = 1 + sum(1 for v in expected.values() if v[0] == "d")
    n = len(expected)
    deadline = time.monotonic() + cfg.ready_timeout
    while time.monotonic() < deadline:
        if inotify_watches(rep.tree()) >= ndirs and count_entries(rep.dst) == n \
                and sampler.idle_for(1.0):
            diff = compare(expected, rep.dst)
            if not diff:
                return
            log(f"{rep.name}: not identical yet: {diff}")
        time.sleep(0.2)
    raise RuntimeError(f"{rep.name} never became ready "
                       f"(watches {inotify_watches(rep.tree())}/{ndirs}, "
                       f"entries {count_entries(rep.dst)}/{n})")


class Ctx:
    pass


def percentile(values, q):
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)] if v else None


def run_phase(cfg, ctx, rep, phase, rnd):
    log(f"round {rnd}, {phase.name}: {rep.name}")
    wipe(rep.src)
    wipe(rep.dst)
    phase.prepare(rep.src)
    expected_before = phase.expected(rep.src)
    root = rep.start()
    ctx.sampler.watch(root, rep.resting, rep.target["pid"])
    t_ready0 = time.monotonic()
    wait_ready(cfg, ctx.sampler, rep, expected_before)
    ready_s = time.monotonic() - t_ready0
    s0 = ctx.sampler.take()
    w0 = wire_counts(rep.target["iface"])
    if rep.resting is None:
        ctx.sampler.base = max(1, s0[4])
    ctx.sampler.hwm = 0
    result = phase.run(ctx, rep)
    t_done = time.monotonic()
    idle = wait_idle(ctx.sampler, 1.0, cfg.drain_cap)
    s1 = ctx.sampler.take()
    w1 = wire_counts(rep.target["iface"])
    wire = [b - a for a, b in zip(w0, w1)] if w0 and w1 else [None] * 4
    window = ctx.sampler.since(s0[0])
    hwm = ctx.sampler.hwm
    ru = rep.stop()
    ctx.sampler.watch(None)
    notes = rep.log_notes()
    time.sleep(0.3)
    divergence = compare(digest(rep.src), rep.dst)
    lags = result["lags"]
    row = {
        "round": rnd, "phase": phase.name, "replicator": rep.name,
        "files": len(lags) + result["missing"],
        "lags": lags,
        "p50": percentile(lags, 0.50), "p99": percentile(lags, 0.99),
        "max": max(lags) if lags else None,
        "missing": result["missing"], "missing_examples": result["missing_examples"],
        "done": result["done"],
        "cpu": s1[1] - s0[1], "daemon_cpu": s1[2] - s0[2],
        "wire_up": wire[0], "wire_down": wire[1],
        "packets_up": wire[2], "packets_down": wire[3],
        "resting_procs": ctx.sampler.base,
        "rss_peak": max(s[3] for s in window),
        "largest_process": hwm,
        "arrivals": [(round(t - s0[0], 4), round(lag, 4)) for t, lag in result["arrivals"]],
        "ru_cpu_life": (ru.ru_utime + ru.ru_stime) if ru else None,
        "busy": not idle, "busy_after": cfg.drain_cap if not idle else None,
        "wall_to_idle": s1[0] - s0[0] - (1.0 if idle else 0),
        "after_done_to_idle": max(0.0, s1[0] - t_done - 1.0) if idle else None,
        "ready_s": ready_s,
        "divergence": divergence,
        "log_notes": notes,
        "info": result["info"],
    }
    log(f"  p50 {fmt(row['p50'])} p99 {fmt(row['p99'])} max {fmt(row['max'])} done "
        f"{fmt(row['done'])} missing {row['missing']} cpu {row['cpu']:.2f} daemon "
        f"{row['daemon_cpu']:.2f} rss {row['rss_peak'] / 2**20:.1f} MiB wire "
        f"{mb(row['wire_up'])}/{mb(row['wire_down'])} MB"
        f"{' BUSY' if row['busy'] else ''}{' DIVERGED ' + str(divergence) if divergence else ''}"
        f" {result['info']}")
    for line in notes[:5]:
        log(f"  log: {line}")
    wipe(rep.src)
    wipe(rep.dst)
    return row


def fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f}"


def mb(n):
    """Bytes as decimal megabytes (the goal's "1 MB" is 10^6 bytes)."""
    return "—" if n is None else f"{n / 1e6:.3f}"


# ---------------------------------------------------------------------------------------------
# Report


def summarize(rows, reps, phases):
    """Pools rounds: lags pooled, CPU and RSS as medians."""
    import statistics
    out = {}
    for ph in phases:
        for rep in reps:
            rs = [r for r in rows if r["phase"] == ph and r["replicator"] == rep]
            if not rs:
                continue
            lags = [x for r in rs for x in r["lags"]]
            missing = sum(r["missing"] for r in rs)
            dones = [r["done"] for r in rs]
            out[(ph, rep)] = {
                "files": sum(r["files"] for r in rs),
                "p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99),
                "max": max(lags) if lags else None,
                "missing": missing,
                "done": None if None in dones else statistics.median(dones),
                "cpu": statistics.median(r["cpu"] for r in rs),
                "daemon_cpu": statistics.median(r["daemon_cpu"] for r in rs),
                "rss": statistics.median(r["rss_peak"] for r in rs) / 2**20,
                "maxrss": statistics.median(r["largest_process"] for r in rs) / 2**20,
                "busy": sum(r["busy"] for r in rs),
                "diverged": [d for r in rs for d in r["divergence"]],
                "log_notes": [n for r in rs for n in r["log_notes"]],
                "rate": [r["info"].get("achieved_rate") for r in rs if r["info"]],
                "found_by_sweep": sum((r["info"] or {}).get("found_by_sweep", 0) for r in rs),
                "wire_up": median_or_none(r["wire_up"] for r in rs),
                "wire_down": median_or_none(r["wire_down"] for r in rs),
                "phase_files": [(r["info"] or {}).get("files") for r in rs],
            }
    return out


def median_or_none(values):
    import statistics
    v = list(values)
    return None if not v or None in v else statistics.median(v)


def lagcell(s, key):
    v = s[key]
    if v is None:
        return "—"
    if s["missing"] and (key == "max" or (key == "p99" and s["missing"] > 0.01 * s["files"])):
        return "never"
    return f"{v:.3f}"


def report(summary, reps, phases, cfg):
    lines = []
    lines.append("| workload | replicator | files | lag p50 s | lag p99 s | lag max s | done s | "
                 "missing | CPU s | daemon CPU s | tree RSS peak MiB | largest process MiB | "
                 "wire MB to target | wire MB from target |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ph in phases:
        for rep in reps:
            s = summary.get((ph, rep))
            if not s:
                continue
            cpu = f"{s['cpu']:.2f}" + (f" (busy at +{cfg.drain_cap} s)" if s["busy"] else "")
            done = "never" if s["missing"] else fmt(s["done"], 2)
            lines.append(
                f"| {ph} | {rep} | {s['files']} | {lagcell(s, 'p50')} | {lagcell(s, 'p99')} | "
                f"{lagcell(s, 'max')} | {done} | {s['missing']} | {cpu} | "
                f"{s['daemon_cpu']:.2f} | {s['rss']:.1f} | {s['maxrss']:.1f} | "
                f"{mb(s['wire_up'])} | {mb(s['wire_down'])} |")
    notes = []
    for ph in phases:
        for rep in reps:
            s = summary.get((ph, rep))
            if s and s["diverged"]:
                notes.append(f"- {ph}, {rep}: target differs from the source after the phase: "
                             f"{'; '.join(s['diverged'])}")
            if s and s["log_notes"]:
                ex = "; ".join(f"`{n}`" for n in s["log_notes"][:3])
                notes.append(f"- {ph}, {rep}: {len(s['log_notes'])} log line(s) of note: {ex}")
            if s and s["found_by_sweep"]:
                notes.append(f"- {ph}, {rep}: {s['found_by_sweep']} arrival(s) seen only by the "
                             f"checker's 1 s safety sweep (their lag is up to 1 s too high)")
            if s and s["rate"] and ph.startswith("stream"):
                want = int(ph.rsplit("-", 1)[1])
                got = min(s["rate"])
                if got < 0.95 * want:
                    notes.append(f"- {ph}, {rep}: the generator reached only {got:.0f} files/s")
    others = [r for r in reps if r != "rtsync"]
    if "rtsync" in reps and others:
        lines.append("")
        head = "| workload | " + " | ".join(
            f"{o} p99 / rtsync p99 | {o} done / rtsync done | {o} CPU / rtsync CPU | "
            f"{o} CPU+daemon / rtsync CPU+daemon | {o} wire / rtsync wire" for o in others) + " |"
        lines.append(head)
        lines.append("|---|" + "---|" * (5 * len(others)))
        for ph in phases:
            base = summary.get((ph, "rtsync"))
            if not base:
                continue
            cells = []
            for o in others:
                s = summary.get((ph, o))
                if not s:
                    cells += ["—"] * 5
                    continue
                cells.append(ratio(s["p99"], base["p99"], s["missing"], base["missing"]))
                cells.append(ratio(s["done"], base["done"], s["missing"], base["missing"]))
                cells.append(ratio(s["cpu"], base["cpu"]) + ("+" if s["busy"] else ""))
                cells.append(ratio(s["cpu"] + s["daemon_cpu"],
                                   base["cpu"] + base["daemon_cpu"]) + ("+" if s["busy"] else ""))
                cells.append(ratio(wire_total(s), wire_total(base)))
            lines.append(f"| {ph} | " + " | ".join(cells) + " |")
    lines += [""] + goals(summary, reps)
    return "\n".join(lines + ([""] + notes if notes else []))


def wire_total(s):
    return None if s["wire_up"] is None else s["wire_up"] + s["wire_down"]


GOAL_LAG = 0.2  # s: p99 lag at 1,000 files/s of 10-300 KB files
GOAL_RENAME_S = 0.2  # s: a 5,000-file directory rename done
GOAL_RENAME_BYTES = 1e6  # on the wire for that rename
GOAL_RATE, GOAL_RENAME_FILES = 1000, 5000


def goals(summary, reps):
    """The issue's goal figures for an rtsync target, met or not, as Markdown list lines."""
    who = "rtsync-peer" if "rtsync-peer" in reps else None
    out = [f"Goals (rtsync run -> rtsync daemon){'' if who else ': rtsync-peer not run'}:"]
    if not who:
        return out

    def verdict(ok):
        return "met" if ok else "NOT met"

    def also(ph, key, f):
        s = summary.get((ph, "rtsync"))
        return f" (rtsync -> stock rsync: {f(s[key])})" if s and key in s else ""

    ph = f"stream-big-{GOAL_RATE}"
    s = summary.get((ph, who))
    if s is None:
        out.append(f"- p99 lag < {GOAL_LAG} s at {GOAL_RATE:,} files/s of 10-300 KB files: not "
                   f"measured (BIG_RATES has no {GOAL_RATE})")
    else:
        p99 = lagcell(s, "p99")
        ok = not s["missing"] and s["p99"] is not None and s["p99"] < GOAL_LAG
        rate = min((r for r in s["rate"] if r), default=None)
        short = (f"; the generator reached only {rate:.0f} files/s"
                 if rate is not None and rate < 0.95 * GOAL_RATE else "")
        out.append(f"- p99 lag < {GOAL_LAG} s at {GOAL_RATE:,} files/s of 10-300 KB files: "
                   f"{p99} s, {verdict(ok)}{also(ph, 'p99', fmt)}{short}")
    s = summary.get(("rename", who))
    if s is None:
        out.append(f"- {GOAL_RENAME_FILES:,}-file directory rename done < {GOAL_RENAME_S} s with < "
                   f"1 MB on the wire: not measured (RENAME_FILES=0 or PHASES without rename)")
    else:
        n = max((f for f in s["phase_files"] if f), default=0)
        size = "" if n == GOAL_RENAME_FILES else f" [with {n:,} files, not {GOAL_RENAME_FILES:,}]"
        done_ok = not s["missing"] and s["done"] is not None and s["done"] < GOAL_RENAME_S
        done = "never" if s["missing"] else fmt(s["done"])
        out.append(f"- {GOAL_RENAME_FILES:,}-file directory rename done < {GOAL_RENAME_S} s: "
                   f"{done} s, {verdict(done_ok)}{also('rename', 'done', fmt)}{size}")
        w = wire_total(s)
        if w is None:
            out.append("- that rename with < 1 MB on the wire: not measured (no namespace: "
                       "run as root without NETNS=0)")
        else:
            base = summary.get(("rename", "rtsync"))
            extra = (f" (rtsync -> stock rsync: {mb(wire_total(base))} MB)"
                     if base and wire_total(base) is not None else "")
            out.append(f"- that rename with < 1 MB on the wire: {mb(w)} MB, "
                       f"{verdict(w < GOAL_RENAME_BYTES)}{extra}{size}")
    return out


def ratio(a, b, ma=0, mb=0):
    if ma or mb:
        return "n/a (missing files)"
    if a is None or b is None or b <= 0:
        return "—"
    return f"{a / b:.1f}"


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--daemon", action="append", required=True,
                    metavar="KIND=ADDR:PORT:PID:IFACE",
                    help="a daemon (KIND rsync or rtsync), its pid and the host end of its veth "
                         "(- for none)")
    ap.add_argument("--rtsync", required=True)
    ap.add_argument("--json")
    cfg = ap.parse_args()
    cfg.daemons = {}
    for d in cfg.daemon:
        kind, rest = d.split("=", 1)
        addr, port, pid, iface = rest.split(":")
        cfg.daemons[kind] = {"addr": addr, "port": int(port), "pid": int(pid),
                             "iface": None if iface in ("", "-") else iface}
    cfg.logs = os.environ.get("LOG_DIR") or os.path.join(cfg.work, "logs")
    os.makedirs(cfg.logs, exist_ok=True)
    cfg.rounds = env_int("ROUNDS", 1)
    cfg.drain_cap = env_int("DRAIN_CAP", 20)
    cfg.ready_timeout = env_int("READY_TIMEOUT", 300)
    timeout = env_int("ARRIVAL_TIMEOUT", 60)
    secs = float(os.environ.get("STREAM_SECS", 10))
    reps = os.environ.get("REPLICATORS", "rtsync-peer rtsync loop lsyncd").split()
    phases = []
    for r in env_list("BIG_RATES", "50 200 500 1000"):
        phases.append(Stream("big", r, secs, timeout))
    for r in env_list("SMALL_RATES", "2000"):
        phases.append(Stream("small", r, secs, timeout))
    if env_int("BURST_FILES", 10000):
        phases.append(Burst(env_int("BURST_FILES", 10000), env_int("BURST_DIRS", 100), timeout))
    if env_int("RENAME_FILES", 5000):
        phases.append(Rename(env_int("RENAME_FILES", 5000), timeout))
    if env_int("TREE_FILES", 100000):
        phases.append(TreeChange(cfg, env_int("TREE_FILES", 100000), env_int("TREE_CHANGES", 5),
                                 timeout))
    only = os.environ.get("PHASES")
    if only:
        phases = [p for p in phases if any(p.name.startswith(o) for o in only.split())]

    ctx = Ctx()
    mpctx = mp.get_context("spawn")
    ctx.Pipe, ctx.Process = mpctx.Pipe, mpctx.Process
    ctx.sampler = Sampler()
    ctx.sampler.start()
    replicators = {name: REPLICATORS[name](cfg) for name in reps}
    for r in replicators.values():
        wipe(r.src)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rows = []
    t0 = time.monotonic()
    try:
        for rnd in range(cfg.rounds):
            order = reps[rnd % len(reps):] + reps[:rnd % len(reps)]
            for phase in phases:
                for name in order:
                    rows.append(run_phase(cfg, ctx, replicators[name], phase, rnd + 1))
    finally:
        for r in replicators.values():
            if r.proc is not None:
                r.stop()
        ctx.sampler.stopped = True
    elapsed = time.monotonic() - t0
    summary = summarize(rows, reps, [p.name for p in phases])
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump({"rows": rows, "elapsed_s": elapsed, "daemons": cfg.daemons,
                       "env": {k: v for k, v in os.environ.items() if k in (
                           "ROUNDS", "DRAIN_CAP", "ARRIVAL_TIMEOUT", "STREAM_SECS", "BIG_RATES",
                           "SMALL_RATES", "BURST_FILES", "BURST_DIRS", "RENAME_FILES",
                           "TREE_FILES", "TREE_CHANGES", "REPLICATORS", "PHASES", "QUICK",
                           "NETNS")}}, f)
    print(report(summary, reps, [p.name for p in phases], cfg))
    print(f"\n(phases took {elapsed:.0f} s)")


if __name__ == "__main__":
    main()
