#!/usr/bin/env python3
"""Per-thread CPU shares and heaviest frames of a `perf script -F tid,time,ip,sym` dump of
the library-ingest phase of `custody bench` (see ingest.sh next to this file)."""
import collections
import re
import sys

GENERATOR = ("world::sign", "world::to_end_users")  # the bench making its next chunk
VERIFY = "SignedEvent::decode"  # only the timed ingest decodes wire bytes
WRITER = "ledger::writer::Writer"


def samples(path):
    cur = None
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                yield cur
            cur = None
            continue
        m = re.match(r"\s*(\d+)\s+([\d.]+):", line)
        if m and not line.startswith("\t"):
            cur = (int(m.group(1)), float(m.group(2)), [])
        elif cur is not None:
            parts = line.strip().split(" ", 1)
            cur[2].append(parts[1] if len(parts) > 1 else "?")
    if cur:
        yield cur


def main():
    all_ = list(samples(sys.argv[1]))
    gen_bins = {int(t * 100) for _, t, s in all_ if any(g in f for f in s for g in GENERATOR)}
    ingest = [t for _, t, s in all_
              if any(VERIFY in f for f in s) and not any(g in f for f in s for g in GENERATOR)]
    if not ingest:
        sys.exit("no ingest samples: record longer, or from the start of the phase")
    lo, hi = min(ingest), max(ingest)
    sel = [x for x in all_ if lo <= x[1] <= hi and int(x[1] * 100) not in gen_bins]
    span = hi - lo - len({b for b in gen_bins if lo * 100 <= b <= hi * 100}) / 100
    print(f"ingest window {span:.2f} s, {len(sel)} samples")
    by_tid = collections.Counter(tid for tid, _, _ in sel)
    writer = {tid for tid, _, s in sel if any(WRITER in f for f in s)}
    verify = {tid for tid, _, s in sel if any(VERIFY in f for f in s)} - writer
    for tid, n in by_tid.most_common(6):
        role = "writer" if tid in writer else "verify/sign pool" if tid in verify else "other"
        print(f"  thread {tid:>7} {role:<17} {100 * n / len(sel):5.1f}% of samples")
    for name, tids in (("verify/sign pool", verify), ("writer", writer)):
        mine = [s for tid, _, s in sel if tid in tids]
        c = collections.Counter(f for s in mine for f in set(s))
        print(f"\n{name}: {len(mine)} samples; inclusive share of custody, ed25519, sled and allocator frames")
        for f, n in c.most_common(400):
            if n / len(mine) >= 0.03 and any(w in f for w in (
                    "custody::", "verify_strict", "try_sign", "sled::tree", "malloc", "mi_")):
                print(f"  {100 * n / len(mine):5.1f}%  {f[:120]}")


if __name__ == "__main__":
    main()
