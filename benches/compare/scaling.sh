#!/usr/bin/env bash
# How `hashsieve hash` scales with threads: images/s at 1 and 2 threads (or THREADS="1 2 4")
# over a directory built from the PDQ vectors in tests/vectors, each copied COPIES times.
# Prints the median of RUNS runs per setting and the speed-up over one thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
vectors=${VECTORS:-tests/vectors/pdq}
copies=${COPIES:-8}
runs=${RUNS:-5}
threads=${THREADS:-"1 2"}

cargo build --release -q -p hashsieve-cli
bin=target/release/hashsieve
work=$(mktemp -d)
result=$(mktemp)
trap 'rm -rf "$work" "$result"' EXIT
for i in $(seq 1 "$copies"); do
  mkdir -p "$work/$i"
  cp "$vectors"/images/*.png "$vectors"/jpeg/*.jpg "$work/$i/"
done
count=$(find "$work" -type f | wc -l)
bytes=$(du -sb "$work" | cut -f1)
echo "input: $count images ($((bytes / 1048576)) MiB of PNG/JPEG), decode + PDQ + four digests"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
base=""
printf '%-8s %12s %14s %10s\n' threads "median s" "images/s" speed-up
for t in $threads; do
  for _ in $(seq 1 "$runs"); do
    start=$(date +%s.%N)
    "$bin" hash --threads "$t" "$work" >/dev/null 2>&1
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {print b - a}'
  done | median >"$result"
  secs=$(cat "$result")
  [ -n "$base" ] || base=$secs
  awk -v t="$t" -v s="$secs" -v n="$count" -v b="$base" 'BEGIN {printf "%-8s %12.3f %14.1f %9.2fx\n", t, s, n / s, b / s}'
done
