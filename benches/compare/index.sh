#!/usr/bin/env bash
# Side-by-side: hashsieve's PDQ index against FAISS (IndexBinaryFlat, IndexBinaryMultiHash
# 16x16 with nflip=1 as Meta's HMA uses it, and with FAISS's default nflip=0) on the same
# synthetic data (pdq_data.py), same threshold (31) and same threads. Each query is eight hashes,
# a query image's dihedral variants. Prints build time, bytes per entry, load time, queries/s,
# single-query p50/p99 and recall against FAISS Flat (exact), then hashsieve's ratios.
#
#   bash benches/compare/index.sh [N] [QUERIES]      (defaults: 1000000 1000)
set -euo pipefail

n=${1:-1000000}
queries=${2:-1000}
threads=$(nproc)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=$(mktemp -d /tmp/hashsieve-index-compare.XXXXXX)
trap 'rm -rf "$dir"' EXIT

python3 -c 'import faiss, numpy' 2>/dev/null || python3 -m pip install --quiet faiss-cpu numpy

echo "data: $n entries, $queries queries of 8 hashes, threshold 31, $threads threads" >&2
python3 "$here/pdq_data.py" --n "$n" --queries "$queries" --seed 1 --out "$dir"
python3 "$here/faiss_pdq.py" "$dir" --threshold 31 --threads "$threads" | tee "$dir/faiss.jsonl"
(cd "$root" && cargo build --release -q -p hashsieve-benches --bin index-compare)
"$root/target/release/index-compare" "$dir" --threshold 31 --threads "$threads" | tee "$dir/hashsieve.jsonl"

python3 - "$dir" <<'PY'
import json, sys, os
d = sys.argv[1]
rows = [json.loads(l) for f in ("faiss.jsonl", "hashsieve.jsonl") for l in open(os.path.join(d, f))]
truth = [set(map(int, l.split())) for l in open(os.path.join(d, "truth.txt"))]
ours = [set(map(int, l.split())) for l in open(os.path.join(d, "hashsieve-results.txt"))]
expected = sum(map(len, truth))
hs = rows[-1]
hs["recall"] = sum(len(a & b) for a, b in zip(ours, truth)) / expected if expected else 1.0
hs["exact"] = ours == truth
print(f"\n{'tool/method':<16}{'build s':>9}{'B/entry':>9}{'load s':>9}{'q/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'recall':>9}")
for r in rows:
    print(f"{r['tool'] + '/' + r['method']:<16}{r['build_s']:>9.2f}{r['bytes_per_entry']:>9.1f}{r['load_s']:>9.4f}"
          f"{r['qps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['recall']:>9.4f}")
print(f"\nhashsieve results equal FAISS Flat's (brute force) for every query: {hs['exact']}")
print(f"hashsieve cold-start (first touch of the mapping) p50/p99: {hs['cold_p50_ms']:.2f}/{hs['cold_p99_ms']:.2f} ms")
for r in rows[:-1]:
    print(f"hashsieve vs faiss/{r['method']}: q/s x{hs['qps'] / r['qps']:.1f}, file size x{hs['file_bytes'] / r['file_bytes']:.2f}, "
          f"load time x{hs['load_s'] / r['load_s']:.5f}, build time x{hs['build_s'] / r['build_s']:.2f}")
PY
