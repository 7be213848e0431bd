#!/usr/bin/env bash
# The figures of live list changes (issue: durable delta log), side by side in one run:
#
#  1. acknowledged adds/s with 8 concurrent writers: hashsieve (each add fsync'd before it
#     returns; group commit) against redis-server with appendonly yes, appendfsync always,
#     doing SADD of the same kind of values (32 hex digits: 20 zeros and 12 random digits)
#     from redis-benchmark's 8 clients, one request in flight each, data on the same disk;
#  2. PDQ query (8 hashes) p50/p99 with 100,000 entries in the delta against an empty delta,
#     on the same 1,000,000-entry base, queries alternating between the two, with the delta's
#     answers checked against brute force;
#  3. a compaction of a 10,000,000-entry index while 2 threads query known answers:
#     its duration, the query p50/p99 during it and the failed queries.
#
#   bash benches/compare/delta.sh            # the full run (about 5 minutes, ~6 GB of RAM)
#   bash benches/compare/delta.sh quick      # small sizes, about a minute
#
# With DELTA_FIGURES_BEFORE=path/to/an/older/delta-figures, part 2 also runs that build on the
# same sizes, right after this tree's, and the summary gives the ratios this/before (a change
# to the delta's search, measured before and after in one run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [[ ${1:-} == quick ]]; then
    adds=4000 base=200000 delta=10000 compact_base=1000000
else
    adds=20000 base=1000000 delta=100000 compact_base=10000000
fi
# Both stores on the same file system: the one /var/tmp is on.
work=$(mktemp -d /var/tmp/hashsieve-delta.XXXXXX)
redis_pid=
cleanup() {
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2 \
        || { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2; }
fi
(cd "$root" && cargo build --release -q -p hashsieve-benches --bin delta-figures)
figures="$root/target/release/delta-figures"
results="$work/results.jsonl"

# Five rounds, alternating, so that disk noise hits both sides alike; medians are reported.
for round in 1 2 3 4 5; do
    echo "1. writers, round $round: hashsieve, 8 threads, $adds acknowledged adds" >&2
    "$figures" writers "$work/hashsieve-writers" --writers 8 --adds "$adds" | tee -a "$results"
    rm -rf "$work/hashsieve-writers"

    echo "1. writers, round $round: redis-server (appendfsync always), 8 clients, $adds SADDs" >&2
    rm -rf "$work/redis" && mkdir -p "$work/redis"
    redis-server --port 6391 --bind 127.0.0.1 --dir "$work/redis" --appendonly yes --appendfsync always \
        --save '' --daemonize no --logfile "$work/redis/log" &
    redis_pid=$!
    for _ in $(seq 100); do redis-cli -p 6391 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    redis_rate=$(redis-benchmark -p 6391 -c 8 -P 1 -n "$adds" -r 100000000 --csv \
        SADD md5list 00000000000000000000__rand_int__ | tail -1 | cut -d, -f2 | tr -d '"')
    members=$(redis-cli -p 6391 scard md5list)
    redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
    echo "{\"tool\": \"redis\", \"figure\": \"writers\", \"clients\": 8, \"adds\": $adds, \"members\": $members, \"adds_per_s\": $redis_rate}" | tee -a "$results"
done

echo "2. PDQ query latency: base $base, delta $delta" >&2
"$figures" latency "$work/latency" --base "$base" --delta "$delta" | tee -a "$results"
rm -rf "$work/latency"
if [[ -n ${DELTA_FIGURES_BEFORE:-} ]]; then
    echo "2. the same with $DELTA_FIGURES_BEFORE" >&2
    "$DELTA_FIGURES_BEFORE" latency "$work/latency" --base "$base" --delta "$delta" \
        | sed 's/"tool": *"hashsieve"/"tool": "hashsieve-before"/' | tee -a "$results"
    rm -rf "$work/latency"
fi

echo "3. compaction of $compact_base entries under query load" >&2
"$figures" compaction "$work/compaction" --base "$compact_base" --delta "$delta" | tee -a "$results"

python3 - "$results" <<'PY'
import json, sys
from statistics import median
all_rows = [json.loads(line) for line in open(sys.argv[1])]
rows = {(r["tool"], r["figure"]): r for r in all_rows}
ours = [r["adds_per_s"] for r in all_rows if r["tool"] == "hashsieve" and r["figure"] == "writers"]
redis = [r["adds_per_s"] for r in all_rows if r["tool"] == "redis"]
ratios = [a / b for a, b in zip(ours, redis)]
print(f"\nacknowledged adds/s, 8 writers, median of {len(ours)} rounds: hashsieve {median(ours):.0f}, "
      f"redis appendfsync always {median(redis):.0f}: ratio {median(ours) / median(redis):.2f} (goal >= 1); "
      f"per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}")
lat = rows[("hashsieve", "latency")]
print(f"PDQ query p50/p99 ms, base {lat['base']}: empty delta {lat['p50_ms_empty']:.3f}/{lat['p99_ms_empty']:.3f}, "
      f"{lat['delta']} in the delta {lat['p50_ms_delta']:.3f}/{lat['p99_ms_delta']:.3f}: p99 ratio "
      f"{lat['p99_ratio']:.2f} (goal <= 2); delta answers equal brute force: {lat['equal_to_brute_force']}")
before = rows.get(("hashsieve-before", "latency"))
if before:
    print(f"   before and after in one run (this tree / DELTA_FIGURES_BEFORE; below 1: faster now): with the delta "
          f"p50 {lat['p50_ms_delta'] / before['p50_ms_delta']:.3f} ({before['p50_ms_delta']:.3f} ms before), "
          f"p99 {lat['p99_ms_delta'] / before['p99_ms_delta']:.3f} ({before['p99_ms_delta']:.3f} ms before); "
          f"empty delta p50 {lat['p50_ms_empty'] / before['p50_ms_empty']:.3f}; "
          f"before's answers equal brute force: {before['equal_to_brute_force']}")
c = rows[("hashsieve", "compaction")]
print(f"compaction of {c['base']} entries (+{c['delta_adds']} adds, -{c['delta_removals']} removals): "
      f"{c['compaction_s']:.1f} s; {c['queries_during']} queries during it, {c['failed_queries']} failed; "
      f"query p50/p99/max {c['query_p50_ms']:.3f}/{c['query_p99_ms']:.3f}/{c['query_max_ms']:.1f} ms; "
      f"peak RSS {c['peak_rss_mib']:.0f} MiB")
PY
