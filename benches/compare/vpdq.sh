#!/usr/bin/env bash
# vPDQ side by side: hashsieve-video vs Meta's reference (PyPI vpdq 0.2.5, its C++ behind
# Cython, built against Debian's FFmpeg libraries) on every video of a folder, default seconds
# per hash (1.0). Prints, per video, whether the features are equal (frame number, timestamp,
# quality, hash) and the median wall time of each side, then "features equal N of N" and the
# median time per video of ours, of the reference, and their ratio.
#
#   bash benches/compare/vpdq.sh                 # the repository's copied vectors
#   bash benches/compare/vpdq.sh DIR             # every file in DIR
#   REPEATS=5 bash benches/compare/vpdq.sh       # timing runs per video (default 5)
#
# - Ours: the example `vpdq-hash` (crates/hashsieve-video/examples), built --release; each
#   video read into memory once, then hashed REPEATS times (ffprobe + ffmpeg + PDQ each time).
# - Reference: `vpdq.computeHash(path)` in a virtual environment under $WORK; its sdist is
#   built against libavcodec-dev libavformat-dev libswscale-dev libavutil-dev (installed here
#   with pkg-config, cmake, g++ when missing). Both sides use all cores (vpdq: thread_count=0).
# Nothing is written inside the repository; scratch files go to $WORK (/tmp/hashsieve-compare).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=${WORK:-/tmp/hashsieve-compare}
videos=${1:-$repo/tests/vectors/vpdq/videos}
repeats=${REPEATS:-5}
mkdir -p "$work"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
for pkg in libavcodec-dev libavformat-dev libswscale-dev libavutil-dev pkg-config cmake g++ python3-venv python3-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
venv=$work/venv
if ! "$venv/bin/python" -c 'import vpdq' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q vpdq==0.2.5 || { echo "vpdq 0.2.5 did not build: reference side unavailable"; exit 1; }
fi

cargo build --release -q -p hashsieve-video --example vpdq-hash
ours=${CARGO_TARGET_DIR:-$repo/target}/release/examples/vpdq-hash

files=()
for f in "$videos"/*; do [ -f "$f" ] && files+=("$f"); done
"$ours" --repeats "$repeats" "${files[@]}" >"$work/ours.csv" 2>"$work/ours.times"

"$venv/bin/python" - "$work" "$repeats" "${files[@]}" <<'PY'
import os, statistics, sys, time
import vpdq
work, repeats, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ours, ours_t = {}, {}
for line in open(f"{work}/ours.csv"):
    name, frame, ts, q, hexh = line.strip().split(",")
    ours.setdefault(name, []).append((int(frame), float(ts), int(q), hexh))
for line in open(f"{work}/ours.times"):
    if line.startswith("# "):
        _, name, secs = line.split()
        ours_t[name] = float(secs)
    else:
        print("ours:", line.strip())
equal, rows = 0, []
print(f"{'video':34} {'features':>9} {'equal':>6} {'ours s':>8} {'vpdq s':>8} {'ratio':>7}")
for path in files:
    name = os.path.basename(path)
    times, ref = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        try:
            ref = [(f.frame_number, f.timestamp, f.quality, f.hex) for f in vpdq.computeHash(path)]
        except Exception as e:
            ref = f"error: {e}"
        times.append(time.perf_counter() - t)
    ref_t = statistics.median(times)
    same = ref == ours.get(name, [])
    equal += same
    o = ours_t.get(name, float("nan"))
    rows.append((o, ref_t))
    n = len(ref) if isinstance(ref, list) else ref
    print(f"{name:34} {n:>9} {str(same):>6} {o:8.3f} {ref_t:8.3f} {ref_t / o:6.2f}x")
mo, mr = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
print(f"\nfeatures equal {equal} of {len(files)}")
print(f"median wall time per video: ours {mo:.3f} s, vpdq {mr:.3f} s, ratio {mr / mo:.2f}x (vpdq / ours; higher is better for us)")
print(f"cores: {os.cpu_count()}, repeats: {repeats}")
PY
