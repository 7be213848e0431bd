#!/usr/bin/env bash
# Side-by-side PDQ index benchmark: hashsieve's index against FAISS on identical synthetic data.
#
#   bash benches/compare/index.sh [N] [Q]        (defaults: N=1000000, Q=1000)
#
# pdq_data.py writes N haystack hashes and Q queries of 8 hashes (a query image's dihedral
# variants) to a temp dir; faiss_pdq.py measures FAISS's IndexBinaryFlat (exact, the recall
# reference), IndexBinaryMultiHash 16x16 with nflip=1 (as Meta's HMA uses it) and with nflip=0
# (FAISS's default); then hashsieve's index-compare binary measures ours on the same files. All
# at threshold 31 with nproc threads. Prints, per tool/method: build time, bytes per entry of the
# saved index, load time and the memory it adds, queries/s, single-query p50/p99 latency and
# recall against Flat; then hashsieve's ratios to each FAISS method.
set -euo pipefail

n=${1:-1000000}
queries=${2:-1000}
threshold=31
threads=$(nproc)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=$(mktemp -d /tmp/hashsieve-index-compare.XXXXXX)
trap 'rm -rf "$dir"' EXIT

if ! python3 -c 'import faiss, numpy' 2>/dev/null; then
    python3 -m pip install --quiet faiss-cpu numpy
fi

echo "data: $n entries, $queries queries of 8 hashes, threshold $threshold, $threads threads" >&2
python3 "$here/pdq_data.py" --n "$n" --queries "$queries" --seed 1 --out "$dir"
python3 "$here/faiss_pdq.py" "$dir" --threshold "$threshold" --threads "$threads" \
    --methods flat,mih1,mih0 | tee "$dir/faiss.jsonl"

echo "hashsieve: building and running index-compare" >&2
if (cd "$root" && cargo run --release -q -p hashsieve-benches --bin index-compare -- \
        "$dir" --threshold "$threshold" --threads "$threads") >"$dir/hashsieve.jsonl" \
    && [[ -s "$dir/hashsieve.jsonl" ]]; then
    cat "$dir/hashsieve.jsonl"
else
    rm -f "$dir/hashsieve.jsonl" "$dir/hashsieve-results.txt"
    echo "hashsieve side MISSING: index-compare failed or printed nothing; FAISS results only" >&2
fi

echo
python3 "$here/faiss_pdq.py" "$dir" --compare
