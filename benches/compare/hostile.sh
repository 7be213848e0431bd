#!/usr/bin/env bash
# hashsieved under hostile clients (issue 19), in one run against its own unloaded baseline:
#
#  1. the latency of ordinary requests — POST /v1/match/hashes (one MD5) and
#     /v1/match/content (a 13 KB JPEG, decoded for PDQ) — first with nothing else going on,
#     then while 64 uploads have sent their head and no body, 64 clamd INSTREAMs have sent
#     their command and no chunk, 1,000 ICAP connections have sent nothing, and 100 HTTP
#     clients pipeline GET /openapi.json and never read: p50, p99 and the ratio of the loaded
#     p99 to the unloaded one (goal: at most 2), the daemon's memory before and under the load;
#  2. three 100-megapixel grey PNGs (400 KB each, 400 MB to decode) posted at once, retried
#     after a 503 as Retry-After says: each answer's time, the daemon's peak memory (VmHWM)
#     against its memory before, and how long after the last answer its memory is back
#     within 64 MiB of where it was.
#
# The daemon is the release build with its default limits (max_in_flight 64, max_decode_bytes
# 2 GiB, max_connections 1024 per listener, write_timeout_secs 10), on loopback. With
# HASHSIEVED=path, that binary is measured instead (a before/after comparison: run twice);
# with MAX_DECODE_BYTES=N, that decode budget (512 MiB makes the three PNGs take turns).
#
#   bash benches/compare/hostile.sh
#   MAX_DECODE_BYTES=536870912 bash benches/compare/hostile.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /var/tmp/hashsieve-hostile.XXXXXX)
trap 'kill "${pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release -q -p hashsieve-cli -p hashsieve-daemon --manifest-path "$root/Cargo.toml"
daemon=${HASHSIEVED:-$root/target/release/hashsieved}
wee=$root/samples/images/wee.jpg
md5sum "$wee" | cut -d' ' -f1 > "$work/hot.md5"
# One PDQ entry, so that content is decoded and PDQ-hashed as it would be against real lists.
printf 'hash\n%s\n' "$(printf '5a%.0s' {1..32})" > "$work/pictures.csv"
"$root/target/release/hashsieve" index build --dir "$work/index" \
    --list "hot=$work/hot.md5" --kind md5 --list "pictures=$work/pictures.csv" --kind pdq >/dev/null 2>&1
cat > "$work/hashsieved.toml" <<EOF
index = "$work/index"
[http]
listen = "127.0.0.1:0"
[clamd]
tcp_listen = "127.0.0.1:0"
[icap]
listen = "127.0.0.1:0"
EOF
if [[ -n ${MAX_DECODE_BYTES:-} ]]; then printf '[limits]\nmax_decode_bytes = %s\n' "$MAX_DECODE_BYTES" >> "$work/hashsieved.toml"; fi
"$daemon" --config "$work/hashsieved.toml" > "$work/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [[ $(grep -c listening "$work/out" 2>/dev/null) == 3 ]] && break; sleep 0.1; done

python3 - "$pid" "$work/out" "$wee" "$(cat "$work/hot.md5")" <<'EOF'
import json, resource, socket, statistics, struct, sys, threading, time, zlib

pid, announced, wee_path, wee_md5 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
addresses = {}
for line in open(announced):
    line = line.strip().removeprefix("listening on ")
    for prefix in ("http://", "clamd tcp://", "icap://"):
        if line.startswith(prefix):
            host, port = line[len(prefix):].rsplit(":", 1)
            addresses[prefix] = (host, int(port))
http, clamd, icap = addresses["http://"], addresses["clamd tcp://"], addresses["icap://"]
wee = open(wee_path, "rb").read()

def memory():
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

def post(path, body, timeout=60):
    s = socket.create_connection(http, timeout=timeout)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    reply = b""
    while chunk := s.recv(1 << 16):
        reply += chunk
    s.close()
    head, _, rest = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    retry = [l for l in head.split(b"\r\n") if l.lower().startswith(b"retry-after:")]
    return status, rest, int(retry[0].split(b":")[1]) if retry else None

hashes = json.dumps({"hashes": [{"kind": "md5", "value": wee_md5}]}).encode()

def latencies(path, body, count=300):
    took = []
    for _ in range(count):
        started = time.perf_counter()
        status, answer, _ = post(path, body)
        took.append(time.perf_counter() - started)
        assert status == 200, (status, answer[:200])
        assert b'"known"' in answer, answer[:200]
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1]

ms = lambda seconds: f"{seconds * 1000:.2f} ms"
print("1. ordinary requests, unloaded and under hostile clients")
base_rss, _ = memory()
unloaded = {path: latencies(path, body) for path, body in [("/v1/match/hashes", hashes), ("/v1/match/content", wee)]}

held = []
for _ in range(64):
    s = socket.create_connection(http)
    s.sendall(b"POST /v1/match/content HTTP/1.1\r\nHost: b\r\nContent-Length: 1000000\r\n\r\n")
    held.append(s)
    s = socket.create_connection(clamd)
    s.sendall(b"zINSTREAM\0")
    held.append(s)
for _ in range(1000):
    held.append(socket.create_connection(icap))
def pipeline():
    s = socket.create_connection(http)
    held.append(s)
    burst = b"GET /openapi.json HTTP/1.1\r\nHost: b\r\n\r\n" * 1000
    try:
        while True:
            s.sendall(burst)
    except OSError:
        pass
for _ in range(100):
    threading.Thread(target=pipeline, daemon=True).start()
time.sleep(1)
loaded_rss, _ = memory()
loaded = {path: latencies(path, body, 150) for path, body in [("/v1/match/hashes", hashes), ("/v1/match/content", wee)]}
for path in unloaded:
    (p50, p99), (lp50, lp99) = unloaded[path], loaded[path]
    print(f"   {path}: unloaded p50 {ms(p50)} p99 {ms(p99)}; loaded p50 {ms(lp50)} p99 {ms(lp99)}; "
          f"p99 ratio loaded/unloaded {lp99 / p99:.2f} (goal <= 2)")
print(f"   memory: {base_rss >> 20} MiB before, {loaded_rss >> 20} MiB under the load")
for s in held:
    s.close()
time.sleep(2)

print("2. three 100-megapixel PNGs at once")
def grey_png(side):
    row = b"\0" + bytes(range(256)) * (side // 256) + bytes(side % 256)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
png = grey_png(10_000)
before, _ = memory()
answers = []
def send():
    started = time.perf_counter()
    while True:
        status, answer, retry = post("/v1/match/content", png)
        if status != 503:
            answers.append((status, time.perf_counter() - started, b'"pdq"' in answer))
            return
        time.sleep(retry)
senders = [threading.Thread(target=send) for _ in range(3)]
started = time.perf_counter()
for t in senders: t.start()
for t in senders: t.join()
done = time.perf_counter()
_, peak = memory()
while memory()[0] > before + (64 << 20) and time.perf_counter() - done < 60:
    time.sleep(0.05)
returned = time.perf_counter() - done
print(f"   answers: {', '.join(f'{status} in {took:.2f} s' + ('' if pdq else ' (not decoded)') for status, took, pdq in answers)}")
print(f"   memory: {before >> 20} MiB before, peak {peak >> 20} MiB (VmHWM), back within 64 MiB {returned:.2f} s after the last answer")
EOF
