#!/usr/bin/env bash
# The ICAP figures (issue: ICAP service), side by side in one run: one real Squid (Debian
# package) with two ports, the same origin and image mix, the same load generator (wrk,
# --latency): port "plain" has no ICAP service, port "icap" sends every response to hashsieved
# as RESPMOD (respmod_precache, with the service settings of docs/squid-icap.conf). Squid
# caches nothing, so every request reaches the origin and, on the icap port, hashsieved.
#
# The index: the demo lists plus 1,000,000 random MD5s. The mix: the seven sample images and
# twelve generated JPEGs and PNGs of 320x240 to 1280x960 (7 KB to 125 KB; four of the samples
# are in the demo lists and get the block page on the icap port), cycled by every connection.
# Every request is hashed afresh: hashsieved keeps no cache of verdicts.
#
# Three origins (benches/src/bin/image-origin.rs):
#   - "local": on this machine, sending at memory speed; only the files of at most 60 KB,
#     because Squid 5.x stalls any ICAP service that answers after the whole body when more
#     than 64 KiB arrive before the ICAP transaction starts (Squid bug 5352);
#   - "rtt-5ms" and "rtt-20ms": every body sent as TCP slow start sends it from a server that
#     many milliseconds away (a first flight of 14,600 bytes, doubling each round trip): all
#     the files. An ICAP service that must see a whole body before answering turns Squid from
#     streaming into store-and-forward, so the comparison with a real origin's timing is the
#     one users feel.
# For each: a correctness pass (every file through both ports with curl: listed files get the
# 403 block page on the icap port, everything else the origin's bytes), then rounds alternating
# plain and icap; the medians of requests/s, p50 and p99, and the ratio of p50s (goal <= 1.3).
#
#   bash benches/compare/icap.sh          # 3 rounds of 20 s per port and origin (~7 minutes)
#   bash benches/compare/icap.sh quick    # 1 round of 5 s
#   CONNECTIONS=1 THREADS=1 bash benches/compare/icap.sh   # one request at a time: latency alone
#
# It installs squid, wrk and curl with apt-get, and Pillow with pip, when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [[ ${1:-} == quick ]]; then rounds=1 seconds=5; else rounds=3 seconds=20; fi
connections=${CONNECTIONS:-8} threads=${THREADS:-2}
work=$(mktemp -d /var/tmp/hashsieve-icap.XXXXXX)
chmod 777 "$work" # Squid started by root runs as `proxy` and writes its logs here.
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sudo=$([[ $(id -u) == 0 ]] || echo sudo)
need=()
[[ -x /usr/sbin/squid ]] || need+=(squid)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [[ ${#need[@]} -gt 0 ]]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2 \
        || { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >&2; }
fi
python3 -c 'import PIL' 2>/dev/null || python3 -m pip install -q pillow >&2
(cd "$root" && cargo build --release -q -p hashsieve-daemon -p hashsieve-cli -p hashsieve-benches \
    --bin hashsieved --bin hashsieve --bin image-origin)
bin="$root/target/release"
results="$work/results.jsonl"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # FILE PATTERN PID: wait until FILE has a line matching PATTERN
    for _ in $(seq 600); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { cat "$1" >&2; exit 1; }
        sleep 0.05
    done
    echo "timed out waiting for $2 in $1" >&2; exit 1
}

echo "== the mix and the index" >&2
mkdir -p "$work/all" "$work/small"
cp "$root"/samples/images/* "$work/all/"
python3 - "$work/all" <<'PY'
import random, sys
from PIL import Image, ImageDraw, ImageFilter
rng = random.Random(7)
sizes = [(320, 240), (480, 320), (640, 480), (800, 600), (1024, 768), (1280, 960)]
for i in range(12):
    w, h = sizes[i % len(sizes)]
    image = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.ellipse((x, y, x + rng.randrange(w // 2), y + rng.randrange(h // 2)),
                     fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(2))
    if i % 4 == 3:
        image.save(f"{sys.argv[1]}/gen-{i:02}.png", optimize=True)
    else:
        image.save(f"{sys.argv[1]}/gen-{i:02}.jpg", quality=85)
PY
find "$work/all" -type f -size -61k -exec cp {} "$work/small/" \;
python3 -c 'import os; print("\n".join(os.urandom(16).hex() for _ in range(1_000_000)))' > "$work/random.md5"
"$bin/hashsieve" index build --dir "$work/index" --list "demo=$root/samples/demo-md5.txt" --kind md5 \
    --list "demopdq=$root/samples/demo-pdq.csv" --kind pdq --list "random=$work/random.md5" --kind md5 >&2
md5sum "$work"/all/* | awk '{print $1}' | grep -F -x -f <(grep -v '^#' "$root/samples/demo-md5.txt" | awk '{print $1}') \
    > "$work/listed-md5s" || true
# What must be blocked, by reference: md5sum against the demo MD5 list, and the images the demo
# PDQ list names (its ids name them).
listed=" q1050.jpg labelme-q0291.png "
for file in "$work"/all/*; do
    grep -q -x "$(md5sum "$file" | awk '{print $1}')" "$work/listed-md5s" && listed+="$(basename "$file") "
done
echo "listed: $listed" >&2

icap_port=$(free_port)
cat > "$work/hashsieved.toml" <<EOF
index = "$work/index"
[http]
listen = "127.0.0.1:0"
[icap]
listen = "127.0.0.1:$icap_port"
EOF
HASHSIEVE_LOG=warn "$bin/hashsieved" --config "$work/hashsieved.toml" > "$work/hashsieved.out" 2> "$work/hashsieved.log" &
daemon_pid=$!
pids+=("$daemon_pid")
wait_for "$work/hashsieved.out" '^listening on icap' "$daemon_pid"

plain_port=$(free_port) icap_proxy_port=$(free_port)
cat > "$work/squid.conf" <<EOF
http_port 127.0.0.1:$plain_port name=plain
http_port 127.0.0.1:$icap_proxy_port name=icap
pid_filename $work/squid.pid
cache_log $work/cache.log
access_log none
coredump_dir $work
cache deny all
http_access allow all
pinger_enable off
netdb_filename none
shutdown_lifetime 1 seconds
acl via_icap myportname icap
icap_enable on
icap_preview_enable on
icap_persistent_connections on
icap_service hashsieve_respmod respmod_precache bypass=off icap://127.0.0.1:$icap_port/respmod
adaptation_access hashsieve_respmod allow via_icap
adaptation_access hashsieve_respmod deny all
EOF
/usr/sbin/squid -N -f "$work/squid.conf" > "$work/squid.out" 2>&1 &
squid_pid=$!
pids+=("$squid_pid")
for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$icap_proxy_port") 2>/dev/null && break
    kill -0 "$squid_pid" 2>/dev/null || { cat "$work/cache.log" >&2; exit 1; }
    sleep 0.05
done

squid_cpu() { awk '{print $14 + $15}' "/proc/$squid_pid/stat"; }
daemon_cpu() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
to_ms() { # wrk's latency (e.g. 812.00us, 3.21ms, 1.02s) in milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

models="local rtt-5ms rtt-20ms"
for model in $models; do
    case $model in
        local) dir="$work/small" rtt=0 ;;
        rtt-*) dir="$work/all" rtt=${model#rtt-} rtt=${rtt%ms} ;;
    esac
    "$bin/image-origin" "$dir" --rtt-ms "$rtt" > "$work/origin.out" &
    origin_pid=$!
    pids+=("$origin_pid")
    wait_for "$work/origin.out" '^listening on' "$origin_pid"
    origin=$(sed -n 's/^listening on //p' "$work/origin.out")
    files=$(cd "$dir" && ls)
    echo "== origin $model ($origin): $(echo "$files" | wc -l) files; correctness through both ports" >&2
    wrong=0 checked=0
    for name in $files; do
        for port in "$plain_port" "$icap_proxy_port"; do
            status=$(curl -s -m 30 -o "$work/got" -w '%{http_code}' -x "http://127.0.0.1:$port" "http://$origin/$name")
            checked=$((checked + 1))
            if [[ $port == "$icap_proxy_port" && $listed == *" $name "* ]]; then
                [[ $status == 403 ]] && grep -q 'known child sexual abuse material' "$work/got" || { wrong=$((wrong + 1)); echo "WRONG: $name via icap: $status" >&2; }
            else
                [[ $status == 200 ]] && cmp -s "$work/got" "$dir/$name" || { wrong=$((wrong + 1)); echo "WRONG: $name via $port: $status" >&2; }
            fi
        done
    done
    echo "{\"origin\": \"$model\", \"figure\": \"correctness\", \"checked\": $checked, \"wrong\": $wrong}" | tee -a "$results"
    lua="$work/proxy.lua"
    cat > "$lua" <<'LUA'
-- Each connection asks the proxy for the origin's files in turn (absolute URIs).
local origin, paths, counter = nil, {}, 0
function init(args)
    origin = args[1]
    for i = 2, #args do paths[#paths + 1] = args[i] end
    counter = math.random(#paths)
end
function request()
    counter = counter + 1
    return wrk.format("GET", "http://" .. origin .. "/" .. paths[counter % #paths + 1], { Host = origin })
end
LUA
    for round in $(seq "$rounds"); do
        for path in plain icap; do
            port=$plain_port
            [[ $path == icap ]] && port=$icap_proxy_port
            squid_before=$(squid_cpu) daemon_before=$(daemon_cpu)
            # shellcheck disable=SC2086
            wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$lua" "http://127.0.0.1:$port" \
                -- "$origin" $files > "$work/wrk.out"
            rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$work/wrk.out")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$work/wrk.out")")
            errors=$(awk '/Socket errors/ {print $0}' "$work/wrk.out" | tr -d ',')
            non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.out")
            ticks=$(getconf CLK_TCK)
            squid_cores=$(awk -v a="$squid_before" -v b="$(squid_cpu)" -v t="$ticks" -v s="$seconds" 'BEGIN {printf "%.2f", (b - a) / t / s}')
            daemon_cores=$(awk -v a="$daemon_before" -v b="$(daemon_cpu)" -v t="$ticks" -v s="$seconds" 'BEGIN {printf "%.2f", (b - a) / t / s}')
            echo "{\"origin\": \"$model\", \"path\": \"$path\", \"round\": $round, \"requests_per_s\": $rps, \"p50_ms\": $p50, \"p99_ms\": $p99, \"non_2xx\": ${non2xx:-0}, \"squid_cores\": $squid_cores, \"hashsieved_cores\": $daemon_cores, \"socket_errors\": \"${errors:-none}\"}" | tee -a "$results"
        done
    done
    kill "$origin_pid" 2>/dev/null || true
    wait "$origin_pid" 2>/dev/null || true
done

echo "== summary (medians over $rounds round(s) of ${seconds}s; $connections connections, $threads wrk threads)" >&2
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for model in ("local", "rtt-5ms", "rtt-20ms"):
    figures = {}
    for path in ("plain", "icap"):
        runs = [r for r in rows if r.get("origin") == model and r.get("path") == path]
        figures[path] = {k: statistics.median(r[k] for r in runs) for k in ("requests_per_s", "p50_ms", "p99_ms", "hashsieved_cores", "squid_cores")}
    correctness = next(r for r in rows if r.get("origin") == model and r.get("figure") == "correctness")
    plain, icap = figures["plain"], figures["icap"]
    print(f"origin {model}: correctness {correctness['checked'] - correctness['wrong']}/{correctness['checked']} right")
    for path in ("plain", "icap"):
        f = figures[path]
        print(f"  squid {path:5}: {f['requests_per_s']:9.1f} req/s  p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms  "
              f"(cores: squid {f['squid_cores']:.2f}, hashsieved {f['hashsieved_cores']:.2f})")
    print(f"  p50 ratio icap/plain: {icap['p50_ms'] / plain['p50_ms']:.2f} (goal <= 1.3); "
          f"requests/s ratio: {icap['requests_per_s'] / plain['requests_per_s']:.2f}")
PY
