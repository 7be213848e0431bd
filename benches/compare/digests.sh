#!/usr/bin/env bash
# All four digests in one pass (hashsieve) against md5sum alone, and against each coreutils
# tool, on the same 1 GiB file in the page cache. Prints medians (MB/s) and the ratio to md5sum.
#   SIZE_MB=1024 REPEATS=5 bash benches/compare/digests.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${SIZE_MB:-1024}
repeats=${REPEATS:-5}
file=${DIGEST_FILE:-/tmp/hashsieve-digest-bench.bin}

cargo build --release -q -p hashsieve-benches --bin digest-time
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" -ne $((size_mb * 1048576)) ]; then
  head -c $((size_mb * 1048576)) /dev/urandom >"$file"
fi
cat "$file" >/dev/null # into the page cache

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_tool() { # median seconds of REPEATS runs of "$@" on the file
  for _ in $(seq 1 "$repeats"); do
    start=$(date +%s.%N)
    "$@" "$file" >/dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {print b - a}'
  done | median
}
ours() { target/release/digest-time "$file" "$1" "$repeats" | cut -d' ' -f1; }

md5=$(time_tool md5sum)
printf '%-40s %10s %10s %14s\n' "$size_mb MiB, median of $repeats" seconds MB/s "vs md5sum"
row() { awk -v n="$1" -v s="$2" -v m="$md5" -v mb="$size_mb" \
  'BEGIN {printf "%-40s %10.3f %10.0f %13.2fx\n", n, s, mb * 1.048576 / s, m / s}'; }
row "md5sum" "$md5"
row "sha1sum" "$(time_tool sha1sum)"
row "sha256sum" "$(time_tool sha256sum)"
command -v b3sum >/dev/null && row "b3sum" "$(time_tool b3sum)"
row "hashsieve md5 only" "$(ours md5)"
row "hashsieve all four, one pass" "$(ours all)"
row "hashsieve all four, one thread" "$(taskset -c 0 target/release/digest-time "$file" all "$repeats" | cut -d' ' -f1)"
echo "agreement: $(target/release/digest-time "$file" md5 1 | cut -d= -f2) (hashsieve md5)"
echo "           $(md5sum "$file" | cut -d' ' -f1) (md5sum)"
