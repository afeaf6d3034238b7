#!/usr/bin/env python3
"""Capture golden rsync block-checksum vectors from a real (stock) rsync.

How it works (no rsync source code is used, only the bytes rsync puts on the
wire):

* For every case we do a PULL through a fake remote shell:

      rsync -e ./rsync-tee-wrapper --no-inc-recursive --no-whole-file -I \
            --checksum-choice=ALG --checksum-seed=SEED -B BLOCK \
            --debug=deltasum3 fakehost:src/FILE dst/FILE

  `rsync-tee-wrapper` (written to a temp dir at run time) drops the host name,
  runs the remote command (`rsync --server --sender ...`) locally and tees the
  server's stdin and stdout into files.  dst/FILE is the basis file, so the
  local rsync (the generator) sends the block sums of dst/FILE to the sender,
  and the sender answers with the token stream followed by the whole-file
  checksum of src/FILE.
* The captured streams are parsed: setup bytes (protocol int, compat-flags
  varint, optional negotiation vstrings, checksum seed int), then the
  multiplexed frames (4-byte LE header ((7+code)<<24)|len, code 0 = data) are
  demultiplexed.  The sum header (count, blength, s2length, remainder; no
  s2length before protocol 27) and the per-block (sum1 LE int32, strong sum
  truncated to s2length) entries are read from the generator->sender stream,
  the tokens and the whole-file checksum from the sender->generator stream.
* The generator's --debug=deltasum3 output (`count=... s2length=...` and
  `chunk[i] ... sum1=XXXXXXXX`) is parsed too and must agree with the wire.
* Seed 0: rsync treats --checksum-seed=0 as "use time()", the server then
  picks time() ^ (pid << 6).  To get a real seed-0 run the server side is
  started with an LD_PRELOAD shim (compiled at run time with cc) whose time()
  returns getpid() << 6, so the server really chooses and sends seed 0.
  The case records the seed actually sent on the wire.
* "redo" cases: the source differs from the basis in one block that was
  constructed to collide with the basis block in sum1 and in the first 2
  bytes of the strong sum.  rsync therefore matches the wrong block, the
  whole-file checksum fails, and rsync redoes the file in phase 2, where the
  generator sends FULL-LENGTH strong block sums.  Both phases are recorded
  (field `phase`).

Usage:
    python3 capture_rsync_sums.py              # capture -> rsync_sums.json, then verify
    python3 capture_rsync_sums.py --regen-data # also rewrite data/ (deterministic)
    python3 capture_rsync_sums.py --verify     # only re-check rsync_sums.json in Python
                                               # (needs `pip install xxhash`)
"""

import argparse
import hashlib
import random
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, 'data')
OUT_JSON = os.path.join(HERE, 'rsync_sums.json')
RSYNC = os.environ.get('RSYNC', '/usr/bin/rsync')
TIMEOUT = 60

DIGEST_LEN = {'md4': 16, 'md5': 16, 'sha1': 20, 'xxh64': 8, 'xxh3': 8, 'xxh128': 16}

# ---------------------------------------------------------------------------
# remote-shell wrapper + time() shim (written to a temp dir at run time)
# ---------------------------------------------------------------------------

WRAPPER_SRC = r'''#!/usr/bin/env python3
# fake remote shell: drop options + host, run the command locally, tee stdio.
import os, subprocess, sys, threading
logdir = os.environ['RSX_LOG']
args = sys.argv[1:]
i = 0
while i < len(args) and args[i].startswith('-'):
    i += 1
cmd = args[i + 1:]
strip = os.environ.get('RSX_STRIP_CAPS')
if strip:  # emulate an older client: drop capability letters after "-e."
    for k, a in enumerate(cmd):
        if a.startswith('-') and not a.startswith('--') and 'e.' in a:
            pre, post = a.split('e.', 1)
            cmd[k] = pre + 'e.' + ''.join(ch for ch in post if ch not in strip)
with open(os.path.join(logdir, 'server_cmd.txt'), 'w') as f:
    f.write('\n'.join(cmd) + '\n')
env = dict(os.environ)
if os.environ.get('RSX_PRELOAD'):
    env['LD_PRELOAD'] = os.environ['RSX_PRELOAD']
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env)
fin = open(os.path.join(logdir, 'to_server.bin'), 'wb', buffering=0)
fout = open(os.path.join(logdir, 'from_server.bin'), 'wb', buffering=0)
def pump_in():
    try:
        while True:
            b = os.read(0, 65536)
            if not b:
                break
            fin.write(b)
            p.stdin.write(b)
    except Exception:
        pass
    try:
        p.stdin.close()
    except Exception:
        pass
t = threading.Thread(target=pump_in, daemon=True)
t.start()
while True:
    b = os.read(p.stdout.fileno(), 65536)
    if not b:
        break
    fout.write(b)
    os.write(1, b)
rc = p.wait()
t.join(0.5)
fin.close()
fout.close()
os._exit(rc)
'''

SHIM_SRC = r'''
#include <time.h>
#include <unistd.h>
/* rsync's server picks time() ^ (getpid() << 6) when the seed is 0;
   make that expression 0 so a real seed-0 run can be captured. */
time_t time(time_t *t) {
    time_t v = (time_t)((unsigned)getpid() << 6);
    if (t) *t = v;
    return v;
}
'''

# ---------------------------------------------------------------------------
# deterministic data
# ---------------------------------------------------------------------------


def prng(label, n):
    """Deterministic byte stream: SHA-256 in counter mode."""
    out = bytearray()
    ctr = 0
    while len(out) < n:
        out += hashlib.sha256(label.encode() + struct.pack('<Q', ctr)).digest()
        ctr += 1
    return bytes(out[:n])


def high_heavy(label, n, pct_high=90):
    raw = prng(label, 2 * n)
    out = bytearray(n)
    for i in range(n):
        b, sel = raw[2 * i], raw[2 * i + 1]
        out[i] = (b | 0x80) if sel * 100 < pct_high * 256 else (b & 0x7f)
    return bytes(out)


def mixed(label, n):
    """Runs of 0xff, 0x80, 0x7f/0x80 alternation, zeros, ASCII and noise."""
    out = bytearray()
    r = prng(label, n)
    k = 0
    text = b'rsync rolling checksum uses signed chars: s1 += (signed char)b; '
    while len(out) < n:
        kind = r[k % len(r)] % 6
        ln = 50 + r[(k + 1) % len(r)] * 4
        k += 2
        if kind == 0:
            seg = b'\xff' * ln
        elif kind == 1:
            seg = b'\x80' * ln
        elif kind == 2:
            seg = b'\x7f\x80' * (ln // 2)
        elif kind == 3:
            seg = b'\x00' * ln
        elif kind == 4:
            seg = (text * (ln // len(text) + 1))[:ln]
        else:
            seg = high_heavy(label + str(k), ln, 75)
        out += seg
    return bytes(out[:n])


def base_data_files():
    return {
        # 40 * 700: exact multiple of block 700 (remainder with 1024)
        'high_28000.bin': high_heavy('high_28000', 28000),
        # 24 * 1024: exact multiple of block 1024 (remainder 76 with 700)
        'high_24576.bin': high_heavy('high_24576', 24576),
        # remainder with both block sizes (601 / 305)
        'mixed_30001.bin': mixed('mixed_30001', 30001),
        # shorter than one block
        'small_613.bin': high_heavy('small_613', 613, 100),
        # all 0xff: 6 identical 700-byte blocks
        'ff_4200.bin': b'\xff' * 4200,
        # 1020 + 4 seed bytes = 1024: md4(seed || data) input is a multiple of 64
        # (used for the old-protocol md4 cases only)
        'high_1020.bin': high_heavy('high_1020', 1020, 100),
    }


# ---------------------------------------------------------------------------
# checksum models (our own implementations / hypotheses, used for collisions
# and for --verify)
# ---------------------------------------------------------------------------

def s32(x):
    x &= 0xffffffff
    return x - (1 << 32) if x & 0x80000000 else x


def rsync_sum1(buf, signed=True):
    s1 = s2 = 0
    n = len(buf)
    for i, b in enumerate(buf):
        if signed and b >= 0x80:
            b -= 256
        s1 += b
        s2 += (n - i) * b
    return ((s1 & 0xffff) | ((s2 & 0xffff) << 16)) & 0xffffffff


def _md4_compress(state, block):
    def rol(x, s):
        x &= 0xffffffff
        return ((x << s) | (x >> (32 - s))) & 0xffffffff
    X = struct.unpack('<16I', block)
    a, b, c, d = state
    F = lambda x, y, z: (x & y) | (~x & z)
    G = lambda x, y, z: (x & y) | (x & z) | (y & z)
    H = lambda x, y, z: x ^ y ^ z
    for i in range(16):
        k = i
        s = (3, 7, 11, 19)[i % 4]
        a = rol(a + F(b, c, d) + X[k], s)
        a, b, c, d = d, a, b, c
    for i in range(16):
        k = (i % 4) * 4 + i // 4
        s = (3, 5, 9, 13)[i % 4]
        a = rol(a + G(b, c, d) + X[k] + 0x5A827999, s)
        a, b, c, d = d, a, b, c
    order = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
    for i in range(16):
        k = order[i]
        s = (3, 9, 11, 15)[i % 4]
        a = rol(a + H(b, c, d) + X[k] + 0x6ED9EBA1, s)
        a, b, c, d = d, a, b, c
    return [(state[0] + a) & 0xffffffff, (state[1] + b) & 0xffffffff,
            (state[2] + c) & 0xffffffff, (state[3] + d) & 0xffffffff]


def md4(msg, skip_pad_if_aligned=False):
    """MD4 per RFC 1320.  skip_pad_if_aligned models a digest that never
    processes the final padding block when len(msg) is a non-zero multiple
    of 64 (the "busted" MD4 of very old rsync protocols, hypothesis)."""
    state = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]
    n = len(msg)
    full = n - (n % 64)
    for i in range(0, full, 64):
        state = _md4_compress(state, msg[i:i + 64])
    if not (skip_pad_if_aligned and n % 64 == 0 and n > 0):
        tail = msg[full:] + b'\x80'
        tail += b'\x00' * ((56 - len(tail)) % 64)
        tail += struct.pack('<Q', (n * 8) & 0xffffffffffffffff)
        for i in range(0, len(tail), 64):
            state = _md4_compress(state, tail[i:i + 64])
    return struct.pack('<4I', *state)


def _xxh():
    try:
        import xxhash
        return xxhash
    except ImportError:
        return None


def xxh_value(alg, data, seed64):
    xx = _xxh()
    if alg == 'xxh64':
        return struct.pack('<Q', xx.xxh64_intdigest(data, seed=seed64))
    if alg == 'xxh3':
        return struct.pack('<Q', xx.xxh3_64_intdigest(data, seed=seed64))
    v = xx.xxh3_128_intdigest(data, seed=seed64)
    return struct.pack('<QQ', v & 0xffffffffffffffff, v >> 64)


def seed_le(seed):
    return struct.pack('<i', seed)


# Hypotheses for the strong BLOCK sum: name -> f(alg, protocol, seed, data)
def block_hypotheses(alg, protocol):
    H = {}
    if alg in ('xxh64', 'xxh3', 'xxh128'):
        H['xxh(data, seed sign-extended to u64), LE words (low64 first for xxh128)'] = \
            lambda s, d: xxh_value(alg, d, s & 0xffffffffffffffff)
        H['xxh(data, seed zero-extended u32), LE words'] = \
            lambda s, d: xxh_value(alg, d, s & 0xffffffff)
        H['xxh canonical big-endian digest, sign-extended seed'] = \
            lambda s, d: xxh_value(alg, d, s & 0xffffffffffffffff)[::-1]
    elif alg == 'md5':
        H['md5(seed_le32 || data), seed omitted when 0'] = \
            lambda s, d: hashlib.md5((seed_le(s) if s else b'') + d).digest()
        H['md5(data || seed_le32), seed omitted when 0'] = \
            lambda s, d: hashlib.md5(d + (seed_le(s) if s else b'')).digest()
        H['md5(seed_le32 || data) always'] = \
            lambda s, d: hashlib.md5(seed_le(s) + d).digest()
        H['md5(data || seed_le32) always'] = \
            lambda s, d: hashlib.md5(d + seed_le(s)).digest()
    elif alg == 'md4':
        H['md4(data || seed_le32), seed omitted when 0'] = \
            lambda s, d: md4(d + (seed_le(s) if s else b''))
        H['md4(data || seed_le32) always'] = lambda s, d: md4(d + seed_le(s))
        H['md4(seed_le32 || data) always'] = lambda s, d: md4(seed_le(s) + d)
        H['md4(seed_le32 || data), seed omitted when 0'] = \
            lambda s, d: md4((seed_le(s) if s else b'') + d)
        H['busted md4(data || seed_le32) always (no final pad block when len%64==0)'] = \
            lambda s, d: md4(d + seed_le(s), True)
        H['busted md4(data || seed_le32), seed omitted when 0 (no final pad block when len%64==0)'] = \
            lambda s, d: md4(d + (seed_le(s) if s else b''), True)
    elif alg == 'sha1':
        H['sha1(seed_le32 || data), seed omitted when 0'] = \
            lambda s, d: hashlib.sha1((seed_le(s) if s else b'') + d).digest()
        H['sha1(data || seed_le32), seed omitted when 0'] = \
            lambda s, d: hashlib.sha1(d + (seed_le(s) if s else b'')).digest()
        H['sha1(data || seed_le32) always'] = lambda s, d: hashlib.sha1(d + seed_le(s)).digest()
        H['sha1(seed_le32 || data) always'] = lambda s, d: hashlib.sha1(seed_le(s) + d).digest()
    return H


def whole_hypotheses(alg):
    H = {}
    if alg in ('xxh64', 'xxh3', 'xxh128'):
        H['xxh(data, seed 0), LE words (low64 first for xxh128)'] = lambda s, d: xxh_value(alg, d, 0)
        H['xxh(data, sign-extended seed), LE words'] = \
            lambda s, d: xxh_value(alg, d, s & 0xffffffffffffffff)
        H['xxh canonical big-endian digest, seed 0'] = lambda s, d: xxh_value(alg, d, 0)[::-1]
    elif alg in ('md5', 'sha1'):
        h = getattr(hashlib, alg)
        H['%s(data) (seed ignored)' % alg] = lambda s, d: h(d).digest()
        H['%s(seed_le32 || data) always' % alg] = lambda s, d: h(seed_le(s) + d).digest()
    elif alg == 'md4':
        H['md4(data) (seed ignored)'] = lambda s, d: md4(d)
        H['md4(seed_le32 || data) always'] = lambda s, d: md4(seed_le(s) + d)
        H['md4(data || seed_le32) always'] = lambda s, d: md4(d + seed_le(s))
        H['busted md4(seed_le32 || data) always (no final pad block when len%64==0)'] = \
            lambda s, d: md4(seed_le(s) + d, True)
    return H


def model_block_strong(alg, protocol, compat_seed_fix, seed, data):
    """Best model (after verification) used to build collisions.
    compat_seed_fix is kept for documentation only: rsync 3.5.0 (OpenSSL
    build) was observed to ignore it for md5/sha1."""
    if alg in ('xxh64', 'xxh3', 'xxh128'):
        return xxh_value(alg, data, seed & 0xffffffffffffffff)
    sd = seed_le(seed) if seed else b''
    # Observed with rsync 3.5.0: md5/sha1 block sums put the seed FIRST even
    # when CF_CHKSUM_SEED_FIX is absent (protocol 29, or 'C' capability removed).
    seed_first = True
    if alg == 'md5':
        return hashlib.md5(sd + data if seed_first else data + sd).digest()
    if alg == 'sha1':
        return hashlib.sha1(sd + data if seed_first else data + sd).digest()
    if alg == 'md4':
        return md4(data + sd, protocol < 27)
    raise ValueError(alg)


# ---------------------------------------------------------------------------
# collision search for the phase-2 ("redo") cases
# ---------------------------------------------------------------------------

def make_collision(alg, protocol, seed_fix, seed, basis, blk_off, blen, label):
    """Return basis with block [blk_off, blk_off+blen) changed so that its
    rsync sum1 is unchanged (add +m,-2m,+m at a few positions, staying inside
    0x82..0xfd so neither the signed nor the unsigned byte sum wraps) and the
    first 2 bytes of the strong sum equal those of the original block."""
    orig = basis[blk_off:blk_off + blen]
    target = model_block_strong(alg, protocol, seed_fix, seed, orig)[:2]
    rnd = random.Random('collide-' + label)
    tries = 0
    while True:
        blk = bytearray(orig)
        for _ in range(3):
            p = rnd.randrange(blen - 2)
            m = 1 + rnd.getrandbits(1)
            a, b, c = blk[p], blk[p + 1], blk[p + 2]
            if 0x82 <= a + m <= 0xfd and 0x82 <= b - 2 * m <= 0xfd and 0x82 <= c + m <= 0xfd \
                    and min(a, b, c) >= 0x82:
                blk[p], blk[p + 1], blk[p + 2] = a + m, b - 2 * m, c + m
        tries += 1
        blk = bytes(blk)
        if blk != orig and model_block_strong(alg, protocol, seed_fix, seed, blk)[:2] == target:
            assert rsync_sum1(blk) == rsync_sum1(orig) and rsync_sum1(blk, False) == rsync_sum1(orig, False)
            out = basis[:blk_off] + blk + basis[blk_off + blen:]
            print('  collision for %s after %d tries' % (label, tries), flush=True)
            return out


REDO_BLOCK = 700
REDO_BASIS = 'redo_basis_2100.bin'
# (label, algorithm or None for protocol default, protocol, seed, stripped caps)
REDO_SPECS = [
    ('xxh128', 'xxh128', 32, -5, ''),
    ('xxh3', 'xxh3', 32, -5, ''),
    ('xxh64', 'xxh64', 32, -5, ''),
    ('md5', 'md5', 32, -5, ''),
    ('md4', 'md4', 32, -5, ''),
    ('sha1', 'sha1', 32, -5, ''),
    ('md5noseedfix', 'md5', 32, -5, 'C'),
    ('md5p29', 'md5', 29, -5, ''),
    ('md4p29', None, 29, -5, ''),
    ('md4p26', None, 26, -5, ''),
]


def redo_source_name(label):
    return 'redo_src_%s.bin' % label


def generate_data():
    os.makedirs(DATA, exist_ok=True)
    files = base_data_files()
    basis = high_heavy('redo_basis', 2100, 95)
    files[REDO_BASIS] = basis
    for label, alg, proto, seed, strip in REDO_SPECS:
        files[redo_source_name(label)] = make_collision(
            alg or 'md4', proto, proto >= 30 and 'C' not in strip, seed, basis,
            REDO_BLOCK, REDO_BLOCK, label)
    for name, data in files.items():
        with open(os.path.join(DATA, name), 'wb') as f:
            f.write(data)
    print('wrote %d data files (%d bytes)' % (len(files), sum(map(len, files.values()))))


# ---------------------------------------------------------------------------
# stream parsing
# ---------------------------------------------------------------------------

class Parse(Exception):
    pass


def read_varint(b, pos):
    ch = b[pos]
    pos += 1
    extra = 0
    while extra < 6 and ch & (0x80 >> extra):
        extra += 1
    val = int.from_bytes(b[pos:pos + extra], 'little')
    pos += extra
    val |= (ch & ((1 << (7 - extra)) - 1)) << (8 * extra)
    return val, pos


def try_vstring(b, pos):
    """A negotiation vstring: len byte (2 bytes if top bit set) + ASCII names."""
    if pos >= len(b):
        return None, pos
    ln = b[pos]
    p = pos + 1
    if ln & 0x80:
        ln = ((ln & 0x7f) << 8) | b[p]
        p += 1
    s = b[p:p + ln]
    if ln == 0 or len(s) != ln or not re.fullmatch(rb'[a-z0-9]+( [a-z0-9]+)*', s):
        return None, pos
    return s.decode(), p + ln


def demux(b, pos):
    data = bytearray()
    msgs = []
    while pos + 4 <= len(b):
        h = struct.unpack_from('<I', b, pos)[0]
        pos += 4
        code = (h >> 24) - 7
        n = h & 0xffffff
        payload = b[pos:pos + n]
        if len(payload) != n:
            raise Parse('truncated frame')
        pos += n
        if code == 0:
            data += payload
        else:
            msgs.append((code, payload.hex()))
    if pos != len(b):
        raise Parse('trailing bytes after frames')
    return bytes(data), msgs


def parse_setup(to_srv, from_srv):
    cproto = struct.unpack_from('<i', to_srv, 0)[0]
    sproto = struct.unpack_from('<i', from_srv, 0)[0]
    proto = min(cproto, sproto)
    spos, cpos = 4, 4
    compat = None
    if proto >= 30:
        compat, spos = read_varint(from_srv, spos)
    srv_lists, cli_lists = [], []
    while True:
        s, spos2 = try_vstring(from_srv, spos)
        if s is None:
            break
        srv_lists.append(s)
        spos = spos2
    while True:
        s, cpos2 = try_vstring(to_srv, cpos)
        if s is None:
            break
        cli_lists.append(s)
        cpos = cpos2
    seed = struct.unpack_from('<i', from_srv, spos)[0]
    spos += 4
    return dict(client_protocol=cproto, server_protocol=sproto, protocol=proto,
                compat_flags=compat, server_lists=srv_lists, client_lists=cli_lists,
                seed=seed, from_pos=spos, to_pos=cpos)


DBG_HEAD = re.compile(r'count=(\d+) rem=(\d+) blength=(\d+) s2length=(\d+) flength=(\d+)')
DBG_CHUNK = re.compile(r'chunk\[(\d+)\] offset=(\d+) len=(\d+) sum1=([0-9a-f]+)')


def parse_debug(text):
    phases = []
    for line in text.splitlines():
        m = DBG_HEAD.search(line)
        if m:
            phases.append(dict(count=int(m[1]), remainder=int(m[2]), blength=int(m[3]),
                               s2length=int(m[4]), flength=int(m[5]), sum1=[]))
            continue
        m = DBG_CHUNK.search(line)
        if m and phases:
            phases[-1]['sum1'].append(int(m[4], 16))
    return phases


def sum_head_bytes(proto, count, blength, s2length, rem):
    if proto >= 27:
        return struct.pack('<iiii', count, blength, s2length, rem)
    return struct.pack('<iii', count, blength, rem)


def parse_streams(to_srv, from_srv, dbg_phases, digest_len):
    setup = parse_setup(to_srv, from_srv)
    proto = setup['protocol']
    if proto >= 30:
        gen, gen_msgs = demux(to_srv, setup['to_pos'])
    else:
        gen, gen_msgs = to_srv[setup['to_pos']:], []
    snd, snd_msgs = demux(from_srv, setup['from_pos'])
    phases = []
    gpos = spos = 0
    for dp in dbg_phases:
        head = sum_head_bytes(proto, dp['count'], dp['blength'], dp['s2length'], dp['remainder'])
        i = gen.find(head, gpos)
        if i < 0:
            raise Parse('sum header not found in generator stream')
        preamble = gen[gpos:i]
        p = i + len(head)
        blocks = []
        for _ in range(dp['count']):
            s1 = struct.unpack_from('<I', gen, p)[0]
            strong = gen[p + 4:p + 4 + dp['s2length']]
            if len(strong) != dp['s2length']:
                raise Parse('truncated block sums')
            blocks.append((s1, strong))
            p += 4 + dp['s2length']
        gpos = p
        # sender echoes the sum header, then tokens, then the file checksum
        j = snd.find(head, spos)
        if j < 0:
            raise Parse('sum header echo not found in sender stream')
        q = j + len(head)
        tokens = []
        while True:
            t = struct.unpack_from('<i', snd, q)[0]
            q += 4
            if t == 0:
                break
            if t > 0:
                tokens.append({'literal': t})
                q += t
            else:
                tokens.append(-(t + 1))
        whole = snd[q:q + digest_len]
        spos = q + digest_len
        phases.append(dict(head=dp, blocks=blocks, tokens=tokens, whole=whole,
                           preamble=preamble.hex()))
    return setup, phases, gen_msgs, snd_msgs


# ---------------------------------------------------------------------------
# running rsync
# ---------------------------------------------------------------------------

def rsync_version():
    out = subprocess.run([RSYNC, '--version'], capture_output=True, text=True,
                         timeout=TIMEOUT).stdout
    return out.splitlines()[0].strip()


def run_case(tmp, shim, basis_name, source_name, alg, proto, seed, block, strip_caps=''):
    work = os.path.join(tmp, 'run')
    shutil.rmtree(work, ignore_errors=True)
    for d in ('src', 'dst', 'log'):
        os.makedirs(os.path.join(work, d))
    shutil.copy(os.path.join(tmp, 'rsync-tee-wrapper'), work)
    shutil.copyfile(os.path.join(DATA, source_name), os.path.join(work, 'src', 'file'))
    shutil.copyfile(os.path.join(DATA, basis_name), os.path.join(work, 'dst', 'file'))
    argv = ['rsync', '-e', './rsync-tee-wrapper', '--no-inc-recursive', '--no-whole-file', '-I']
    if proto != 32:
        argv.append('--protocol=%d' % proto)
    if alg:
        argv.append('--checksum-choice=%s' % alg)
    if seed != 0:
        argv.append('--checksum-seed=%d' % seed)
    argv += ['-B', str(block), '--debug=deltasum3', 'fakehost:src/file', 'dst/file']
    env = dict(os.environ, RSX_LOG=os.path.join(work, 'log'))
    env.pop('RSYNC_RSH', None)
    if seed == 0:
        env['RSX_PRELOAD'] = shim
    if strip_caps:
        env['RSX_STRIP_CAPS'] = strip_caps
    r = subprocess.run([RSYNC] + argv[1:], cwd=work, env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    if r.returncode != 0:
        raise RuntimeError('rsync failed rc=%d: %s' % (r.returncode, r.stderr))
    rd = lambda n: open(os.path.join(work, 'log', n), 'rb').read()
    server_cmd = rd('server_cmd.txt').decode().split('\n')[:-1]
    return argv, server_cmd, rd('to_server.bin'), rd('from_server.bin'), r.stdout + r.stderr


def capture():
    version = rsync_version()
    tmp = tempfile.mkdtemp(prefix='rtsync-capture-')
    try:
        with open(os.path.join(tmp, 'rsync-tee-wrapper'), 'w') as f:
            f.write(WRAPPER_SRC)
        os.chmod(os.path.join(tmp, 'rsync-tee-wrapper'), 0o755)
        shim = os.path.join(tmp, 'seed0shim.so')
        with open(os.path.join(tmp, 'seed0shim.c'), 'w') as f:
            f.write(SHIM_SRC)
        subprocess.run(['cc', '-shared', '-fPIC', '-O2', '-o', shim,
                        os.path.join(tmp, 'seed0shim.c')], check=True, timeout=TIMEOUT)

        base = sorted(set(base_data_files()) - {'high_1020.bin'})
        plan = []  # (basis, source, alg, proto, seed, block, kind, strip_caps)
        for alg in ('xxh128', 'xxh3', 'xxh64', 'md5', 'md4'):
            for seed in (0, 12345, -5):
                for block in (700, 1024):
                    for fn in base:
                        plan.append((fn, fn, alg, 32, seed, block, 'identical', ''))
        for seed in (0, 12345, -5):
            plan.append(('high_28000.bin', 'high_28000.bin', 'sha1', 32, seed, 700, 'identical', ''))
            for fn in base + ['high_1020.bin']:
                plan.append((fn, fn, None, 29, seed, 700, 'identical', ''))   # md4, protocol 29
            for fn in ('high_1020.bin', 'high_28000.bin'):
                plan.append((fn, fn, None, 27, seed, 700, 'identical', ''))   # md4, protocol 27
            plan.append(('high_1020.bin', 'high_1020.bin', None, 26, seed, 1024, 'identical', ''))
            for fn in ('high_28000.bin', 'small_613.bin', 'mixed_30001.bin'):
                plan.append((fn, fn, 'md5', 29, seed, 700, 'identical', ''))  # md5, no compat flags
                plan.append((fn, fn, None, 26, seed, 700, 'identical', ''))   # md4, protocol 26
                plan.append((fn, fn, None, 26, seed, 1024, 'identical', ''))
                # protocol 32 but the server never sets CF_CHKSUM_SEED_FIX: the 'C'
                # capability letter is removed from the server's "-e." string
                # (what an older 3.x client would send)
                plan.append((fn, fn, 'md5', 32, seed, 700, 'identical', 'C'))
                plan.append((fn, fn, 'sha1', 32, seed, 700, 'identical', 'C'))
        # negotiated (no --checksum-choice)
        plan.append(('high_28000.bin', 'high_28000.bin', None, 32, 12345, 700, 'identical', ''))
        plan.append(('high_28000.bin', 'high_28000.bin', None, 30, 12345, 700, 'identical', ''))
        for label, alg, proto, seed, strip in REDO_SPECS:
            plan.append((REDO_BASIS, redo_source_name(label), alg, proto, seed, REDO_BLOCK,
                         'redo', strip))

        cases = []
        for n, (basis, source, alg, proto, seed, block, kind, strip) in enumerate(plan):
            argv, server_cmd, to_srv, from_srv, dbg = run_case(
                tmp, shim, basis, source, alg, proto, seed, block, strip)
            dbg_phases = parse_debug(dbg)
            setup = parse_setup(to_srv, from_srv)
            if alg:
                algorithm = alg
            elif setup['server_lists']:
                cl = setup['client_lists'][0].split()
                algorithm = [a for a in setup['server_lists'][0].split() if a in cl][0]
            else:
                algorithm = 'md4'
            setup, phases, gen_msgs, snd_msgs = parse_streams(
                to_srv, from_srv, dbg_phases, DIGEST_LEN[algorithm])
            if setup['seed'] != seed:
                raise RuntimeError('seed on the wire %d != requested %d' % (setup['seed'], seed))
            if kind == 'redo' and len(phases) != 2:
                raise RuntimeError('redo case did not redo: %s' % source)
            for ph_no, ph in enumerate(phases, 1):
                dp = ph['head']
                sum1_dbg = dp['sum1']
                if sum1_dbg != [b[0] for b in ph['blocks']]:
                    raise RuntimeError('debug sum1 disagrees with the wire')
                compat = setup['compat_flags']
                case = {
                    'name': '%s_%s%s_p%d%s_seed%d_b%d%s' % (
                        os.path.splitext(source)[0], algorithm,
                        '' if alg or not setup['server_lists'] else '_negotiated',
                        setup['protocol'], '_noseedfix' if strip else '', seed, block,
                        '_phase%d' % ph_no if kind == 'redo' else ''),
                    'data_file': basis,
                    'source_file': source,
                    'algorithm': algorithm,
                    'algorithm_negotiated': alg is None and bool(setup['server_lists']),
                    'seed': setup['seed'],
                    'protocol': setup['protocol'],
                    'compat_flags': compat,
                    'phase': ph_no,
                    'block_length': dp['blength'],
                    's2length': dp['s2length'],
                    'count': dp['count'],
                    'remainder': dp['remainder'],
                    'file_length': dp['flength'],
                    'blocks': [{'sum1': '%08x' % s1, 'strong': st.hex()} for s1, st in ph['blocks']],
                    'tokens': ph['tokens'],
                    'whole_file_sum': ph['whole'].hex(),
                    'sum1_matches_debug_output': True,
                    'rsync_version': version,
                    'rsync_command': ' '.join(argv),
                    'server_command': ' '.join(server_cmd),
                    'seed0_via_time_shim': seed == 0,
                    'server_caps_stripped': strip,
                }
                if kind == 'redo':
                    case['note'] = ('source differs from basis in block 1, built to collide in sum1 '
                                    'and the first 2 strong-sum bytes; phase 1 matches the wrong '
                                    'block, the whole-file check fails, phase 2 resends the block '
                                    'sums with full-length strong sums')
                cases.append(case)
            print('[%3d/%d] %-44s proto=%d seed=%d B=%d phases=%d' % (
                n + 1, len(plan), source + ' ' + algorithm, setup['protocol'], seed, block,
                len(phases)), flush=True)
        names = [c['name'] for c in cases]
        assert len(names) == len(set(names)), 'duplicate case names'
        with open(OUT_JSON, 'w') as f:
            f.write('[\n')
            for i, c in enumerate(cases):
                f.write(json.dumps(c, separators=(',', ':')))
                f.write(',\n' if i + 1 < len(cases) else '\n')
            f.write(']\n')
        print('wrote %s: %d cases' % (OUT_JSON, len(cases)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# verification of the captured fixture against Python models
# ---------------------------------------------------------------------------

def verify():
    with open(OUT_JSON) as f:
        cases = json.load(f)
    have_xxh = _xxh() is not None
    cache = {}

    def data(name):
        if name not in cache:
            cache[name] = open(os.path.join(DATA, name), 'rb').read()
        return cache[name]

    sum1_signed_ok = sum1_unsigned_ok = nblocks = 0
    # (alg, proto-class, seed-class, which) -> hypothesis -> [ok, total]
    results = {}
    for c in cases:
        d = data(c['data_file'])
        bl = c['block_length']
        for i, b in enumerate(c['blocks']):
            chunk = d[i * bl:(i + 1) * bl]
            v = int(b['sum1'], 16)
            nblocks += 1
            sum1_signed_ok += rsync_sum1(chunk) == v
            sum1_unsigned_ok += rsync_sum1(chunk, False) == v
        alg = c['algorithm']
        if alg.startswith('xxh') and not have_xxh:
            continue
        seed = c['seed']
        seedcls = 'seed=0' if seed == 0 else ('seed<0' if seed < 0 else 'seed>0')
        flags = c['compat_flags'] or 0
        pcls = 'p%d%s' % (c['protocol'], '+SEED_FIX' if flags & 32 else '')
        key = (alg, pcls, seedcls, 'block(s2length=%s)' % ('full' if c['phase'] == 2 else 'short'))
        res = results.setdefault(key, {})
        for name, fn in block_hypotheses(alg, c['protocol']).items():
            ok = all(fn(seed, d[i * bl:(i + 1) * bl])[:c['s2length']] == bytes.fromhex(b['strong'])
                     for i, b in enumerate(c['blocks']))
            r = res.setdefault(name, [0, 0])
            r[0] += ok
            r[1] += 1
        src = data(c['source_file'])
        key = (alg, pcls, seedcls, 'whole-file')
        res = results.setdefault(key, {})
        for name, fn in whole_hypotheses(alg).items():
            r = res.setdefault(name, [0, 0])
            r[0] += fn(seed, src) == bytes.fromhex(c['whole_file_sum'])
            r[1] += 1
    print('sum1 (signed chars):   %d/%d blocks match' % (sum1_signed_ok, nblocks))
    print('sum1 (unsigned chars): %d/%d blocks match' % (sum1_unsigned_ok, nblocks))
    all_ok = sum1_signed_ok == nblocks
    for key in sorted(results):
        print('%s %s %s %s' % key)
        matched = False
        for name, (ok, tot) in results[key].items():
            print('    %-80s %d/%d' % (name, ok, tot))
            matched |= ok == tot
        all_ok &= matched
    if not have_xxh:
        print('(xxhash module missing: xxh* strong sums not verified)')
    print('VERIFY', 'OK' if all_ok else 'FAILED')
    return all_ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--regen-data', action='store_true', help='rewrite data/ deterministically')
    ap.add_argument('--verify', action='store_true', help='only verify rsync_sums.json')
    a = ap.parse_args()
    if a.verify:
        sys.exit(0 if verify() else 1)
    if a.regen_data or not os.path.isdir(DATA) or not os.listdir(DATA):
        generate_data()
    capture()
    verify()


if __name__ == '__main__':
    main()
