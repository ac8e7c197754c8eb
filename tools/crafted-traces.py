#!/usr/bin/env python3
"""Writes hostile trace files for tools/reader-torture.sh: the shapes the issue-13 campaign used
(valid checksums over inconsistent contents, resynchronisation bombs, 100,000 streams) and random
mutations of the committed corpus with every checksum recomputed, so they reach the decoder.

usage: crafted-traces.py OUT_DIR [MUTANTS_PER_SEED]
"""
import os, random, struct, sys

def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
TABLE = _table()

def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

def file_header(program=b"crafted", start_ns=1_000_000):
    body = b"ASYNCTRC" + struct.pack("<HHIQQH", 3, 38 + len(program), 1, start_ns, 5, len(program)) + program
    return body + struct.pack("<I", crc32c(body))

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def chunk(payload, events, pid=1, tid=2, seq=0, start_ns=1_000_000, end_ns=2_000_000, start_ticks=None, end_ticks=None,
          dropped=0, flags=2, fix_crc=True):
    st = start_ns if start_ticks is None else start_ticks
    et = end_ns if end_ticks is None else end_ticks
    h = struct.pack("<IHHIIIIQQQQQQII", 0x4B435441, 80, flags, len(payload), events, pid, tid, seq, start_ns, end_ns,
                    st, et, dropped, 0, 0)
    crc = crc32c(payload, crc32c(h)) if fix_crc else 0xDEADBEEF
    return h[:72] + struct.pack("<I", crc) + h[76:] + payload

def before(asyncid_delta, tick_delta=1):
    z = (asyncid_delta << 1) ^ (asyncid_delta >> 63)
    return bytes([0x09]) + varint(tick_delta) + varint(z & (2**64 - 1))

def fix_checksums(b):
    b = bytearray(b)
    if len(b) < 38 or b[:8] != b"ASYNCTRC":
        return bytes(b)
    hl = b[10] | b[11] << 8
    pos = 8
    if 38 <= hl <= len(b):
        b[hl - 4:hl] = struct.pack("<I", crc32c(bytes(b[:hl - 4])))
        pos = hl
    while pos + 80 <= len(b):
        if b[pos:pos + 4] != b"ATCK":
            pos += 1
            continue
        n = struct.unpack_from("<I", b, pos + 8)[0]
        if n > len(b) - pos - 80:
            pos += 1
            continue
        h = bytes(b[pos:pos + 72]) + b"\0\0\0\0" + bytes(b[pos + 76:pos + 80])
        b[pos + 72:pos + 76] = struct.pack("<I", crc32c(bytes(b[pos + 80:pos + 80 + n]), crc32c(h)))
        pos += 80 + n
    return bytes(b)

def mutate(data, rng):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(7)
        if not b:
            break
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x41])
        elif op == 2 and i + 8 <= len(b):
            b[i:i + 8] = struct.pack("<Q", rng.choice([0, 2**64 - 1, 2**63, 2**63 - 1, rng.getrandbits(64)]))
        elif op == 3:
            del b[i:i + rng.randint(1, 64)]
        elif op == 4:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 200)]
        elif op == 5:
            b = b[:i]
        else:
            b[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 32)))
    return bytes(b)

def main():
    out = sys.argv[1]
    per_seed = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    os.makedirs(out, exist_ok=True)
    def put(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    # Clock running backwards, and ticks far past the end: valid checksums.
    ev = before(1) + before(1, 10**15)
    put("backwards-clock.atrace", file_header() + chunk(ev, 2, start_ns=5_000_000, end_ns=1_000, start_ticks=10, end_ticks=20))
    put("huge-ticks.atrace", file_header() + chunk(before(1) + before(1, 2**62), 2, start_ns=2**64 - 1000, end_ns=2**64 - 1,
                                                       start_ticks=0, end_ticks=1))
    # Syscall durations summing past 2^64 (kernel stream: pid tid nr fd size ret duration).
    sc = b"".join(bytes([0x20]) + varint(1) + varint(1) + varint(1) + varint(0) + varint(6) + varint(10) + varint(20)
                  + varint(2**64 - 3) for _ in range(4))
    put("overflowing-durations.atrace", file_header() + chunk(sc, 4, tid=0, flags=3, start_ns=0, end_ns=2**64 - 2))
    put("overflowing-dropped.atrace", file_header() + chunk(before(1), 1, tid=1, dropped=2**64 - 2)
        + chunk(before(1), 1, tid=2, dropped=2**64 - 2))
    # 100,000 one-event streams, none final.
    put("streams-100k.atrace", file_header() + b"".join(chunk(before(1), 1, tid=t, flags=0) for t in range(1, 100_001)))
    # Resynchronisation bombs: a fake header every 80 bytes, each claiming a payload up to near the end of the file.
    for mib in (4, 20):
        size = mib << 20
        n = size // 80
        body = bytearray()
        for k in range(n):
            remaining = size - (k + 1) * 80 - 8
            body += chunk(b"", 0, fix_crc=False)[:8] + struct.pack("<I", max(0, min(remaining, 16 << 20))) + bytes(68)
        put(f"resync-bomb-{mib}mib.atrace", file_header() + bytes(body) + chunk(before(1), 1))
        # Garbage byte before every small chunk (a fresh 1 MiB read per resynchronisation used to make this quadratic).
        small = chunk(before(1), 1, flags=0)
        put(f"garbage-between-{mib}mib.atrace", file_header() + (b"\x00" + small) * (size // (len(small) + 1)))
    # Mutants of every seed, with checksums recomputed (and a few without).
    rng = random.Random(13)
    seeds = []
    for d in sys.argv[3:] or ["Fuzz/corpus", "Tests/TraceReaderTests/Golden"]:
        if os.path.isdir(d):
            seeds += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".atrace")]
    for s in seeds:
        data = open(s, "rb").read()
        base = os.path.basename(s)[:-7]
        for k in range(per_seed):
            m = mutate(data, rng)
            put(f"mutant-{base}-{k}.atrace", fix_checksums(m) if k % 4 else m)

if __name__ == "__main__":
    main()
