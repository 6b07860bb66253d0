#!/usr/bin/env bash
# Profiles the library-ingest phase of `custody bench` per thread, with call graphs
# (BENCHMARKS.md, fifth round). Needs `perf` and python3.
#
#   benches/profile/ingest.sh [EVENTS] [SECONDS]      (defaults: 100000, 4)
#
# Starts a release bench, waits for its first "library ingest" log line, records that
# process for SECONDS with DWARF call graphs, then prints the CPU share of each thread and
# the heaviest frames of the verifying threads and of the writer (`threads.py`). Samples
# taken while the bench signs its next chunk of synthetic events (outside the timed ingest)
# are left out.
set -euo pipefail
events=${1:-100000}
secs=${2:-4}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build --release --quiet
CUSTODY_LOG=info ./target/release/custody bench --events "$events" --format json \
    >"$out/bench.json" 2>"$out/bench.log" &
pid=$!
until grep -q "library ingest: 0 of" "$out/bench.log" 2>/dev/null; do sleep 0.05; done
perf record -F 1999 --call-graph dwarf,32768 -p "$pid" -o "$out/perf.data" -- sleep "$secs" 2>/dev/null
wait "$pid"
perf script -i "$out/perf.data" -F tid,time,ip,sym --no-inline 2>/dev/null >"$out/samples.txt"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("library ingest of this run: %.0f events/s" % d["library_ingest_per_s"])' "$out/bench.json"
python3 "$here/threads.py" "$out/samples.txt"
