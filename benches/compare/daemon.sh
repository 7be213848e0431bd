#!/usr/bin/env bash
# The daemon's figures (issue: hashsieved), side by side in one run:
#
#  1. against the real clamd (Debian clamav-daemon, run in the foreground on 127.0.0.1 with a
#     generated clamd.conf) whose only database is a generated .hdb of 1,000,000 random MD5s
#     (random sizes) plus the MD5s of 5% of the test files; hashsieved serves an index of the
#     same MD5s. The test files are 200 files of random bytes, 100 KB to 1 MB. For each
#     daemon: the time from launch to its first PONG and its memory (VmRSS, peak VmHWM) once
#     loaded; every file scanned once with each reply checked against the list; then the same
#     INSTREAM load from the same client (clamd-load: 8 connections, one file a connection as
#     clamd's clients send them, every reply checked), rounds alternating clamd, hashsieved,
#     ...; medians, the ratio of files/s (goal >= 3) and the memory after the load;
#  2. HTTP lookups against a 10,000,000-entry index: a sample of answers checked with curl,
#     then wrk (2 threads, 64 connections, --latency; hashes.lua: random MD5s, one in ten
#     listed) with one MD5 a request and with 100, each with hashsieved's default audit log
#     (a line per lookup) and without it; requests/s, lookups/s (goal >= 100,000), p50/p99,
#     the cores each side used (wrk and the daemon share them) and the daemon's memory;
#  3. hashsieved's memory with 10,000 idle HTTP connections, 10,000 slowloris connections (a
#     header byte a second), 10,000 idle clamd connections and 10,000 idle clamd sessions,
#     each on a fresh daemon with a 30 s header deadline so that they outlast the measurement:
#     before, while held, after they close, the daemon's count of them, and the latency of a
#     request made meanwhile; then, under the default 10 s deadline, how many slowloris, idle
#     HTTP and idle clamd connections are still open 15 s after opening.
#
#   bash benches/compare/daemon.sh            # the full run (about 6 minutes, ~2 GB of RAM)
#   bash benches/compare/daemon.sh quick      # shorter rounds, a 1,000,000-entry index: 3 minutes
#
# Before and after a change, in the same run: HASHSIEVED_BEFORE=path/to/an/older/hashsieved
# runs that binary beside this tree's in parts 1 and 2 (same index, same load, rounds
# alternating) and the summary adds the ratios this/before. An older build, for example:
#   git worktree add /tmp/before REV && CARGO_TARGET_DIR=/tmp/before-target \
#     cargo build --release --manifest-path /tmp/before/Cargo.toml -p hashsieve-daemon --bin hashsieved
#   HASHSIEVED_BEFORE=/tmp/before-target/release/hashsieved bash benches/compare/daemon.sh
#
# It installs clamav-daemon, wrk and curl with apt-get when missing (it never runs freshclam:
# clamd sees the generated database only), raises the open-files limit, and prints JSON lines
# as it goes, then a summary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [[ ${1:-} == quick ]]; then
    rounds=1 seconds=5 lookup_entries=1000000 wrk_seconds=5
else
    rounds=3 seconds=20 lookup_entries=10000000 wrk_seconds=20
fi
signatures=1000000 files=200 connections=8 held=10000 hold_seconds=8
before=${HASHSIEVED_BEFORE:-}
if [[ -n $before && ! -x $before ]]; then echo "HASHSIEVED_BEFORE=$before: not an executable" >&2; exit 1; fi
work=$(mktemp -d /var/tmp/hashsieve-daemon.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sudo=$([[ $(id -u) == 0 ]] || echo sudo)
need=()
command -v clamd >/dev/null || need+=(clamav-daemon)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [[ ${#need[@]} -gt 0 ]]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2 \
        || { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2; }
fi
# The daemons inherit this: 10,000 connections held at once need more than the usual 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) > held + 100)) || { echo "open-files limit $(ulimit -n): too low to hold $held connections" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p hashsieve-daemon -p hashsieve-cli -p hashsieve-benches \
    --bin hashsieved --bin hashsieve --bin clamd-load --bin idle-connections)
bin="$root/target/release"
results="$work/results.jsonl"

# Memory of a process in MB: resident now, and the peak.
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
peak() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
memory() { echo "\"rss_mb\": $(rss "$1"), \"peak_mb\": $(peak "$1")"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { awk "BEGIN {printf \"%.3f\", $(now) - $1}"; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Starts hashsieved (or the binary DAEMON) with CONFIG in the background, logging at LEVEL
# (default info: its default, an audit line per decision); sets daemon_pid, and http and
# clamd_tcp to the addresses it prints once listening (clamd_tcp empty if it has no clamd listener).
start_hashsieved() {
    local config=$1 level=${2:-info} daemon=${3:-$bin/hashsieved} out="$work/hashsieved.out" expected=1
    grep -q '^tcp_listen' "$config" && expected=2
    : > "$out"
    HASHSIEVE_LOG=$level "$daemon" --config "$config" > "$out" 2>> "$work/hashsieved.log" &
    daemon_pid=$!
    pids+=("$daemon_pid")
    for _ in $(seq 6000); do
        [[ $(grep -c '^listening on' "$out") -ge $expected ]] && break
        kill -0 "$daemon_pid" 2>/dev/null || { tail "$work/hashsieved.log" >&2; exit 1; }
        sleep 0.05
    done
    http=$(sed -n 's|^listening on http://||p' "$out")
    clamd_tcp=$(sed -n 's|^listening on clamd tcp://||p' "$out")
}

echo "== 1. INSTREAM against clamd: $signatures random MD5 signatures, $files files of 100 KB to 1 MB" >&2
mkdir -p "$work/files" "$work/clamdb" "$work/clamtmp"
python3 - "$work" "$signatures" "$files" <<'PY'
import hashlib, os, random, sys
work, count, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random()
listed = set(rng.sample(range(files), files // 20))
with open(f"{work}/signatures.md5", "w") as md5s, open(f"{work}/clamdb/bench.hdb", "w") as hdb, \
        open(f"{work}/listed.txt", "w") as names:
    for i in range(files):
        content = os.urandom(rng.randint(100_000, 1_000_000))
        name = f"file-{i:03}.bin"
        with open(f"{work}/files/{name}", "wb") as out:
            out.write(content)
        if i in listed:
            digest = hashlib.md5(content).hexdigest()
            names.write(f"{name}\n")
            md5s.write(f"{digest}\n")
            hdb.write(f"{digest}:{len(content)}:Bench.Listed.{i}\n")
    # Sizes in the files' range: clamd looks a file's MD5 up only if some signature has its size.
    block = os.urandom(16 * count).hex()
    for i in range(count):
        digest = block[32 * i:32 * i + 32]
        md5s.write(f"{digest}\n")
        hdb.write(f"{digest}:{rng.randint(100_000, 1_000_000)}:Bench.Random.{i}\n")
PY
"$bin/hashsieve" index build --dir "$work/index-signatures" --list "hot=$work/signatures.md5" --kind md5 >&2

clamd_port=$(free_port)
cat > "$work/clamd.conf" <<EOF
TCPSocket $clamd_port
TCPAddr 127.0.0.1
DatabaseDirectory $work/clamdb
TemporaryDirectory $work/clamtmp
LogFile $work/clamd.log
Foreground yes
StreamMaxLength 2M
EOF
started=$(now)
clamd --config-file="$work/clamd.conf" > "$work/clamd.out" 2>&1 &
clamd_pid=$!
pids+=("$clamd_pid")
"$bin/clamd-load" ready "127.0.0.1:$clamd_port" 600 >/dev/null || { tail "$work/clamd.log" "$work/clamd.out" >&2; exit 1; }
echo "{\"tool\": \"clamd\", \"figure\": \"startup\", \"ready_s\": $(since "$started"), $(memory "$clamd_pid")}" | tee -a "$results"

hs_port=$(free_port)
cat > "$work/hashsieved-signatures.toml" <<EOF
index = "$work/index-signatures"
[http]
listen = "127.0.0.1:0"
[clamd]
tcp_listen = "127.0.0.1:$hs_port"
max_stream_bytes = 2097152
EOF
started=$(now)
"$bin/hashsieved" --config "$work/hashsieved-signatures.toml" > /dev/null 2>> "$work/hashsieved.log" &
hs_pid=$!
pids+=("$hs_pid")
"$bin/clamd-load" ready "127.0.0.1:$hs_port" 600 >/dev/null || { tail "$work/hashsieved.log" >&2; exit 1; }
echo "{\"tool\": \"hashsieved\", \"figure\": \"startup\", \"ready_s\": $(since "$started"), $(memory "$hs_pid")}" | tee -a "$results"
if [[ -n $before ]]; then
    before_port=$(free_port)
    sed "s|^tcp_listen = .*|tcp_listen = \"127.0.0.1:$before_port\"|" "$work/hashsieved-signatures.toml" \
        > "$work/before-signatures.toml"
    started=$(now)
    "$before" --config "$work/before-signatures.toml" > /dev/null 2>> "$work/before.log" &
    before_pid=$!
    pids+=("$before_pid")
    "$bin/clamd-load" ready "127.0.0.1:$before_port" 600 >/dev/null || { tail "$work/before.log" >&2; exit 1; }
    echo "{\"tool\": \"hashsieved-before\", \"figure\": \"startup\", \"ready_s\": $(since "$started"), $(memory "$before_pid")}" \
        | tee -a "$results"
fi

"$bin/clamd-load" check "127.0.0.1:$clamd_port" "$work/files" "$work/listed.txt" clamd | tee -a "$results"
"$bin/clamd-load" check "127.0.0.1:$hs_port" "$work/files" "$work/listed.txt" hashsieved | tee -a "$results"
[[ -z $before ]] || "$bin/clamd-load" check "127.0.0.1:$before_port" "$work/files" "$work/listed.txt" hashsieved-before \
    | tee -a "$results"
for round in $(seq "$rounds"); do
    echo "1. round $round of $rounds: clamd, then hashsieved${before:+, then the one before}, $connections connections, ${seconds}s each" >&2
    "$bin/clamd-load" scan "127.0.0.1:$clamd_port" "$work/files" "$work/listed.txt" clamd "$connections" "$seconds" \
        | tee -a "$results"
    "$bin/clamd-load" scan "127.0.0.1:$hs_port" "$work/files" "$work/listed.txt" hashsieved "$connections" "$seconds" \
        | tee -a "$results"
    [[ -z $before ]] || "$bin/clamd-load" scan "127.0.0.1:$before_port" "$work/files" "$work/listed.txt" hashsieved-before \
        "$connections" "$seconds" | tee -a "$results"
done
echo "{\"tool\": \"clamd\", \"figure\": \"memory-after-load\", $(memory "$clamd_pid")}" | tee -a "$results"
echo "{\"tool\": \"hashsieved\", \"figure\": \"memory-after-load\", $(memory "$hs_pid")}" | tee -a "$results"
[[ -z $before ]] || echo "{\"tool\": \"hashsieved-before\", \"figure\": \"memory-after-load\", $(memory "$before_pid")}" \
    | tee -a "$results"
stop "$clamd_pid"
stop "$hs_pid"
[[ -z $before ]] || stop "$before_pid"
rm -rf "$work/files" "$work/clamdb"

echo "== 2. HTTP lookups against a $lookup_entries-entry index (wrk)" >&2
python3 - "$work/lookups.md5" "$lookup_entries" <<'PY'
import os, sys
path, count = sys.argv[1], int(sys.argv[2])
with open(path, "w") as out:
    for start in range(0, count, 1_000_000):
        n = min(1_000_000, count - start)
        block = os.urandom(16 * n).hex()
        out.write("\n".join(block[32 * i:32 * i + 32] for i in range(n)) + "\n")
PY
shuf -n 1000 "$work/lookups.md5" > "$work/lookups-listed.txt"
started=$(now)
"$bin/hashsieve" index build --dir "$work/index-lookups" --list "hot=$work/lookups.md5" --kind md5 >&2
build_s=$(since "$started")
rm "$work/lookups.md5"
cat > "$work/hashsieved-lookups.toml" <<EOF
index = "$work/index-lookups"
[http]
listen = "127.0.0.1:0"
EOF
start_hashsieved "$work/hashsieved-lookups.toml"
echo "{\"tool\": \"hashsieved\", \"figure\": \"lookup-index\", \"entries\": $lookup_entries, \"build_s\": $build_s, $(memory "$daemon_pid")}" \
    | tee -a "$results"
# A sample of answers, over curl: 100 listed MD5s must be known, 100 fresh random ones unknown.
python3 - "$work/lookups-listed.txt" > "$work/sample.json" <<'PY'
import json, os, random, sys
listed = random.sample(open(sys.argv[1]).read().split(), 100)
fresh = [os.urandom(16).hex() for _ in range(100)]
print(json.dumps({"hashes": [{"kind": "md5", "value": v} for v in listed + fresh]}))
PY
curl -sS --fail-with-body -H 'Content-Type: application/json' --data @"$work/sample.json" \
    "http://$http/v1/match/hashes" > "$work/sample-answer.json"
python3 - "$work/sample.json" "$work/sample-answer.json" <<'PY' | tee -a "$results"
import json, sys
asked = [h["value"] for h in json.load(open(sys.argv[1]))["hashes"]]
answers = json.load(open(sys.argv[2]))["results"]
assert [a["value"] for a in answers] == asked, "answers in the order asked"
outcomes = [a["outcome"] for a in answers]
print(json.dumps({"tool": "curl", "figure": "lookup-sample", "listed": 100, "listed_known": outcomes[:100].count("known"),
                  "random": 100, "random_unknown": outcomes[100:].count("unknown")}))
PY
# CPU seconds a process has used so far (user and system; clock ticks are 1/100 s).
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
# wrk against the daemon running now, with PER_REQUEST MD5s a request; one JSON line, with the
# cores each side used: they share the machine's.
lookups() {
    local per_request=$1 audit=$2 daemon=${3:-hashsieved} daemon_cpu wrk_cpu
    echo "2. $daemon: wrk -t2 -c64 -d${wrk_seconds}s, $per_request MD5(s) a request, audit log $audit" >&2
    daemon_cpu=$(cpu_s "$daemon_pid")
    TIMEFORMAT='%U %S'
    { time wrk -t2 -c64 -d"${wrk_seconds}s" --latency -s "$here/hashes.lua" "http://$http" \
        -- "$work/lookups-listed.txt" "$per_request" > "$work/wrk.txt"; } 2> "$work/wrk-cpu.txt"
    daemon_cpu=$(awk "BEGIN {print $(cpu_s "$daemon_pid") - $daemon_cpu}")
    wrk_cpu=$(awk '{print $1 + $2}' "$work/wrk-cpu.txt")
    python3 - "$work/wrk.txt" "$per_request" "$lookup_entries" "$audit" "$daemon_cpu" "$wrk_cpu" "$daemon" <<'PY' | tee -a "$results"
import json, re, sys
text, per_request = open(sys.argv[1]).read(), int(sys.argv[2])
def ms(label):
    value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
    return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
seconds = float(re.search(r"requests in ([\d.]+)s,", text).group(1))
non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
print(json.dumps({"tool": "wrk", "figure": "lookups", "daemon": sys.argv[7], "index_entries": int(sys.argv[3]),
                  "hashes_per_request": per_request,
                  "audit_log": sys.argv[4] == "on", "requests_per_s": rate, "lookups_per_s": rate * per_request,
                  "p50_ms": ms(50), "p99_ms": ms(99), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
                  "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
                  "daemon_cores": float(sys.argv[5]) / seconds, "wrk_cores": float(sys.argv[6]) / seconds}))
PY
}
lookups 1 on
lookups 100 on
echo "{\"tool\": \"hashsieved\", \"figure\": \"memory-after-lookups\", \"entries\": $lookup_entries, $(memory "$daemon_pid")}" \
    | tee -a "$results"
stop "$daemon_pid"
# The audit lines (one per lookup) are hashsieved's default; how fast it is without them, too.
rm -f "$work/hashsieved.log"
start_hashsieved "$work/hashsieved-lookups.toml" warn
lookups 1 off
lookups 100 off
stop "$daemon_pid"
if [[ -n $before ]]; then
    for audit in on off; do
        rm -f "$work/hashsieved.log"
        start_hashsieved "$work/hashsieved-lookups.toml" "$([[ $audit == on ]] && echo info || echo warn)" "$before"
        lookups 1 "$audit" hashsieved-before
        lookups 100 "$audit" hashsieved-before
        stop "$daemon_pid"
    done
fi
rm -rf "$work/index-lookups"

echo "== 3. memory with $held connections held: idle, slowloris, idle clamd" >&2
# Both with max_connections above the connections held; "held" keeps a 30 s header deadline so
# that the connections outlast the measurement, "default" leaves it at its default (10 s).
for deadline in held default; do
    cat > "$work/hashsieved-$deadline.toml" <<EOF
index = "$work/index-signatures"
[http]
listen = "127.0.0.1:0"
[clamd]
tcp_listen = "127.0.0.1:0"
[limits]
max_connections = 20000
$([[ $deadline == held ]] && echo "header_timeout_secs = 30")
EOF
done
# The connections of PROTOCOL (http or clamd) open now, as the daemon counts them (on /metrics).
open_connections() {
    # The request for /metrics is itself an HTTP connection: not counted.
    curl -s "http://$http/metrics" | awk -v p="$1" '$1 == "hashsieve_open_connections{protocol=\"" p "\"}" \
        {print $2 - (p == "http")}'
}
# Starts a fresh hashsieved with the DEADLINE configuration (so that each figure starts from the
# same memory) and holds $held connections of MODE to its PROTOCOL (http or clamd) listener
# for $hold_seconds (plus EXTRA): reads the daemon's memory and its count of open connections
# before, while they are all open and after they are closed, and times a request made
# meanwhile (GET /healthz on HTTP, PING on clamd).
hold() {
    local deadline=$1 mode=$2 protocol=$3 seconds=$((hold_seconds + ${4:-0}))
    local log="$work/held-$deadline-$mode-$protocol.txt" address before during late counted probe_ms answered code
    start_hashsieved "$work/hashsieved-$deadline.toml"
    address=$([[ $protocol == clamd ]] && echo "$clamd_tcp" || echo "$http")
    before=$(rss "$daemon_pid")
    "$bin/idle-connections" "$mode" "$address" "$held" "$seconds" > "$log" &
    local holder=$!
    pids+=("$holder")
    for _ in $(seq 2400); do grep -q '"open"' "$log" && break; sleep 0.05; done
    grep -q '"open"' "$log" || { echo "idle-connections did not open its connections" >&2; exit 1; }
    sleep 2
    during=$(rss "$daemon_pid")
    counted=$(open_connections "$protocol")
    if [[ $protocol == clamd ]]; then
        probe_ms=$("$bin/clamd-load" ready "$address" 5 | awk '{print $1 * 1000}') && answered=true || answered=false
    else
        read -r code probe_ms < <(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' \
            "http://$address/healthz" | awk '{print $1, $2 * 1000}')
        answered=$([[ $code == 200 ]] && echo true || echo false)
    fi
    # Slowloris connections grow as their heads arrive: the memory again just before they close.
    sleep $((seconds - 3))
    late=$(rss "$daemon_pid")
    wait "$holder"
    sleep 2
    local open_s still after
    after=$(open_connections "$protocol")
    open_s=$(sed -n 's/.*"connect_s": *\([0-9.]*\).*/\1/p' "$log")
    still=$(sed -n 's/.*"still_open": *\([0-9]*\).*/\1/p' "$log")
    echo "{\"tool\": \"hashsieved\", \"figure\": \"held\", \"deadline\": \"$deadline\", \"mode\": \"$mode\", \"protocol\": \"$protocol\", \"connections\": $held, \"open_s\": $open_s, \"daemon_counted\": ${counted:-null}, \"held_s\": $seconds, \"still_open_at_end\": $still, \"daemon_counted_after\": ${after:-null}, \"rss_before_mb\": $before, \"rss_during_mb\": $during, \"rss_late_mb\": $late, \"rss_after_mb\": $(rss "$daemon_pid"), \"peak_mb\": $(peak "$daemon_pid"), \"probe_answered\": $answered, \"probe_ms\": ${probe_ms:-null}}" \
        | tee -a "$results"
    stop "$daemon_pid"
}
hold held idle http
hold held slowloris http
hold held idle clamd
hold held clamd-session clamd
echo "3. the default 10 s header deadline: slowloris, idle HTTP and idle clamd connections after 15 s" >&2
hold default slowloris http $((15 - hold_seconds))
hold default idle http $((15 - hold_seconds))
hold default idle clamd $((15 - hold_seconds))
echo
echo "== summary"
python3 - "$results" "$(nproc)" "$signatures" <<'PY'
import json, sys
from statistics import median
rows = [json.loads(line) for line in open(sys.argv[1])]
cores, signatures = sys.argv[2], int(sys.argv[3])
def one(tool, figure):
    return next(r for r in rows if r["tool"] == tool and r["figure"] == figure)

tools = [t for t in ("clamd", "hashsieved", "hashsieved-before") if any(r["tool"] == t for r in rows)]
scans = {tool: [r for r in rows if r["tool"] == tool and r["figure"] == "instream"] for tool in tools}
med = {tool: {key: median(r[key] for r in scans[tool]) for key in ("files_per_s", "mb_per_s", "p50_ms", "p99_ms")}
       for tool in scans}
ratio = med["hashsieved"]["files_per_s"] / med["clamd"]["files_per_s"]
per_round = ", ".join(f"{h['files_per_s'] / c['files_per_s']:.2f}" for c, h in zip(scans["clamd"], scans["hashsieved"]))
print(f"1. INSTREAM, {scans['clamd'][0]['connections']} connections, random files of 100 KB-1 MB, {signatures:,} MD5 "
      f"signatures; medians of {len(scans['clamd'])} alternating rounds ({cores} cores, shared with the client):")
for tool in scans:
    m = med[tool]
    print(f"   {tool:10} {m['files_per_s']:7.1f} files/s {m['mb_per_s']:6.1f} MB/s  p50 {m['p50_ms']:6.2f} ms  "
          f"p99 {m['p99_ms']:6.2f} ms")
print(f"   ratio hashsieved/clamd files/s: {ratio:.2f} (goal >= 3); per round {per_round}")
for tool in scans:
    check = one(tool, "check")
    load_errors = sum(r["errors"] for r in scans[tool])
    load_files = sum(r["files"] for r in scans[tool])
    agree = "every reply agrees with the list" if check["errors"] == 0 and load_errors == 0 else "REPLIES DISAGREE"
    print(f"   correctness, {tool}: {agree}: each file once: {check['found']}/{check['listed']} listed FOUND, "
          f"{check['ok']}/{check['files'] - check['listed']} others OK, {check['errors']} wrong; "
          f"under load: {load_files} right, {load_errors} wrong")
for tool in scans:
    start, after = one(tool, "startup"), one(tool, "memory-after-load")
    print(f"   {tool:10} start-up to first PONG {start['ready_s']:6.3f} s; loaded: RSS {start['rss_mb']:6.1f} MB "
          f"(peak {start['peak_mb']:6.1f}); after the load: RSS {after['rss_mb']:6.1f} MB (peak {after['peak_mb']:6.1f})")
startups = {tool: one(tool, "startup") for tool in scans}
print(f"   clamd/hashsieved: start-up {startups['clamd']['ready_s'] / startups['hashsieved']['ready_s']:.0f}x as long, "
      f"loaded RSS {startups['clamd']['rss_mb'] / startups['hashsieved']['rss_mb']:.0f}x as large")

index, sample = one("hashsieved", "lookup-index"), one("curl", "lookup-sample")
print(f"2. HTTP lookups, {index['entries']:,}-entry index (built in {index['build_s']:.1f} s; RSS {index['rss_mb']:.1f} MB "
      f"after start-up), wrk -t2 -c64 on the same {cores} cores:")
print(f"   curl sample: {sample['listed_known']}/{sample['listed']} listed known, "
      f"{sample['random_unknown']}/{sample['random']} random unknown")
for r in rows:
    if r["figure"] == "lookups":
        goal = "met" if r["lookups_per_s"] >= 100_000 else "NOT met"
        print(f"   {r['daemon']:17} {r['hashes_per_request']:3} MD5(s)/request, audit log {'on ' if r['audit_log'] else 'off'}: "
              f"{r['requests_per_s']:7,.0f} requests/s = {r['lookups_per_s']:9,.0f} lookups/s (goal >= 100,000: {goal})")
        print(f"       p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; non-2xx {r['non_2xx']}, socket errors "
              f"{r['socket_errors']}; cores used: hashsieved {r['daemon_cores']:.2f}, wrk {r['wrk_cores']:.2f}")
after = one("hashsieved", "memory-after-lookups")
print(f"   hashsieved after the lookups (audit log on): RSS {after['rss_mb']:.1f} MB (peak {after['peak_mb']:.1f})")

held = [r for r in rows if r["figure"] == "held"]
print(f"3. hashsieved with {held[0]['connections']:,} connections held at once, a fresh daemon each "
      "(max_connections 20000; open: as /metrics counts them, 2 s after opening and after closing):")
names = {("idle", "http"): "idle HTTP", ("slowloris", "http"): "slowloris HTTP", ("idle", "clamd"): "idle clamd",
         ("clamd-session", "clamd"): "idle clamd IDSESSION"}
for r in held:
    deadline = "header deadline 30 s" if r["deadline"] == "held" else "default deadline 10 s"
    probe = f"{r['probe_ms']:.1f} ms" if r["probe_answered"] else "NOT ANSWERED"
    each = (r["rss_during_mb"] - r["rss_before_mb"]) * 1024 / r["connections"]
    print(f"   {names[(r['mode'], r['protocol'])]}, {deadline}: RSS {r['rss_before_mb']:.1f} MB -> "
          f"{r['rss_during_mb']:.1f} all open ({each:+.1f} KiB each) -> {r['rss_late_mb']:.1f} at {r['held_s'] - 1} s "
          f"-> {r['rss_after_mb']:.1f} closed; peak {r['peak_mb']:.1f}")
    print(f"       opened in {r['open_s']:.1f} s; open: {r['daemon_counted']}, then {r['daemon_counted_after']}; "
          f"{'GET /healthz' if r['protocol'] == 'http' else 'PING'} meanwhile {probe}; "
          f"still open {r['held_s']} s after opening: {r['still_open_at_end']:,}")

if "hashsieved-before" in scans:
    now, then = scans["hashsieved"], scans["hashsieved-before"]
    print("before and after in one run: this tree / HASHSIEVED_BEFORE (above 1: faster, below 1: slower)")
    ratio = med["hashsieved"]["files_per_s"] / med["hashsieved-before"]["files_per_s"]
    per_round = ", ".join(f"{a['files_per_s'] / b['files_per_s']:.2f}" for a, b in zip(now, then))
    print(f"   INSTREAM files/s, median of {len(now)} rounds: {ratio:.3f} (per round {per_round}); "
          f"p99 {med['hashsieved']['p99_ms']:.2f} ms against {med['hashsieved-before']['p99_ms']:.2f}")
    lookups = {(r["daemon"], r["hashes_per_request"], r["audit_log"]): r for r in rows if r["figure"] == "lookups"}
    for (daemon, per_request, audit), r in lookups.items():
        if daemon != "hashsieved":
            continue
        b = lookups[("hashsieved-before", per_request, audit)]
        print(f"   lookups, {per_request:3} MD5(s)/request, audit log {'on ' if audit else 'off'}: requests/s "
              f"{r['requests_per_s'] / b['requests_per_s']:.3f} ({r['requests_per_s']:,.0f} against {b['requests_per_s']:,.0f}); "
              f"p99 {r['p99_ms']:.2f} ms against {b['p99_ms']:.2f}")
PY
