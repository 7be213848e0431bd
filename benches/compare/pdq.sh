#!/usr/bin/env bash
# PDQ side by side: hashsieve vs Meta's reference C++ core vs the `pdqhash` Python package, on
# the same pixels, single-threaded. Prints median times, the ratios, and whether all three
# sides produced the same hash.
#
#   benches/compare/pdq.sh            # REPEATS=15 by default; REPEATS_LARGE=5 for 4000x3000
#
# - Ours: `pdq-time` (benches/src/bin/pdq-time.rs), built --release, RGB8 in memory -> hash.
# - C++: the reference core from a ThreatExchange checkout (THREATEXCHANGE_DIR, default the
#   fetched mirror), built with g++ -O3 -march=native outside the repository, driven by a small
#   timing program generated below. Two numbers: luma+hash (fillFloatLumaFromRGB then
#   pdqHash256FromFloatLuma: the same work as ours) and hash only (luma precomputed).
# - Python: pdqhash.compute on a numpy array of the same pixels (the binding does its own luma).
# - Decode + hash on the JPEG vectors: ours (image crate + PDQ) vs Pillow open/convert + pdqhash.
# Nothing is written inside the repository; scratch files go to $WORK (/tmp/hashsieve-compare).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=${WORK:-/tmp/hashsieve-compare}
te_dir=${THREATEXCHANGE_DIR:-/work/.mirror/facebook+ThreatExchange/repo}
vectors=${VECTORS:-$repo/tests/vectors/pdq}
repeats=${REPEATS:-15}
repeats_large=${REPEATS_LARGE:-5}
mkdir -p "$work"

# (a) Python side.
if ! python3 -c 'import pdqhash, PIL, numpy' 2>/dev/null; then
  python3 -m pip install -q pdqhash pillow numpy >/dev/null 2>&1 || true
fi
have_python=1
python3 -c 'import pdqhash, PIL, numpy' 2>/dev/null || { have_python=0; echo "python pdqhash/pillow/numpy unavailable: Python side skipped"; }

# (b) C++ side: the reference core and our own timing driver.
cpp_bin=""
if [ -e "$te_dir" ]; then
  src=$work/threatexchange
  rm -rf "$src"; mkdir -p "$src"
  # Only the core's sources (the mirror lacks some large blobs, so no `git archive` of a tree).
  core=()
  for f in common/pdqbasetypes.h common/pdqhamming.cpp common/pdqhamming.h common/pdqhashtypes.cpp \
    common/pdqhashtypes.h downscaling/downscaling.cpp downscaling/downscaling.h \
    hashing/pdqhashing.cpp hashing/pdqhashing.h hashing/torben.cpp hashing/torben.h; do
    core+=("pdq/cpp/$f")
  done
  if [ -d "$te_dir/pdq/cpp" ]; then
    (cd "$te_dir" && cp --parents -r "${core[@]}" "$src/")           # a work tree
  else
    for f in "${core[@]}"; do                                       # a bare/mirror git dir
      mkdir -p "$src/$(dirname "$f")"
      git -C "$te_dir" show "HEAD:$f" >"$src/$f"
    done
  fi
  cat >"$work/pdq_time.cpp" <<'CPP'
// Timing driver for the reference PDQ core: raw RGB8 file in, median milliseconds out.
#include <pdq/cpp/hashing/pdqhashing.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
using namespace facebook::pdq::hashing;
using clk = std::chrono::steady_clock;

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char** argv) {
  if (argc != 5) { std::fprintf(stderr, "usage: %s file.rgb width height repeats\n", argv[0]); return 2; }
  int w = std::atoi(argv[2]), h = std::atoi(argv[3]), reps = std::atoi(argv[4]);
  size_t n = (size_t)w * h;
  std::vector<uint8_t> rgb(n * 3);
  FILE* f = std::fopen(argv[1], "rb");
  if (!f || std::fread(rgb.data(), 1, rgb.size(), f) != rgb.size()) { std::perror(argv[1]); return 1; }
  std::fclose(f);
  std::vector<float> luma(n), buf1(n), buf2(n);
  static float b64[64][64], b16x64[16][64], b16[16][16];
  Hash256 hash;
  int quality = 0;
  std::vector<double> with_luma, core_only;
  fillFloatLumaFromRGB(&rgb[0], &rgb[1], &rgb[2], h, w, w * 3, 3, luma.data());
  for (int r = 0; r <= reps; r++) {  // run 0 warms up
    auto t0 = clk::now();
    fillFloatLumaFromRGB(&rgb[0], &rgb[1], &rgb[2], h, w, w * 3, 3, buf1.data());
    pdqHash256FromFloatLuma(buf1.data(), buf2.data(), h, w, b64, b16x64, b16, hash, quality);
    auto t1 = clk::now();
    std::memcpy(buf1.data(), luma.data(), n * sizeof(float));  // the core blurs in place
    auto t2 = clk::now();
    pdqHash256FromFloatLuma(buf1.data(), buf2.data(), h, w, b64, b16x64, b16, hash, quality);
    auto t3 = clk::now();
    if (r > 0) {
      with_luma.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      core_only.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
    }
  }
  std::printf("%.4f\t%.4f\t", median(with_luma), median(core_only));
  for (int i = 15; i >= 0; i--) std::printf("%04x", (unsigned)hash.w[i]);
  std::printf("\t%d\n", quality);
  return 0;
}
CPP
  cpp_bin=$work/pdq-time-cpp
  c=$src/pdq/cpp
  if ! g++ -O3 -march=native -std=c++17 -I"$src" -o "$cpp_bin" "$work/pdq_time.cpp" \
      "$c/hashing/pdqhashing.cpp" "$c/hashing/torben.cpp" "$c/downscaling/downscaling.cpp" \
      "$c/common/pdqhashtypes.cpp" "$c/common/pdqhamming.cpp" 2>"$work/g++.log"; then
    echo "C++ build failed (see $work/g++.log): C++ side skipped"; cpp_bin=""
  fi
else
  echo "no ThreatExchange checkout at $te_dir (set THREATEXCHANGE_DIR): C++ side skipped"
fi

# Ours.
cargo build --release -q -p hashsieve-benches --bin pdq-time
ours=${CARGO_TARGET_DIR:-$repo/target}/release/pdq-time

# (c) The same pixels for every side: raw RGB8 files.
python3 - "$work" <<'PY'
import sys, numpy as np
work = sys.argv[1]
for w, h in [(1024, 768), (1000, 750), (4000, 3000)]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(w * h)
    r = 127.5 + 100 * np.sin(x * 6.0 / w + y * 3.5 / h)
    g = 127.5 + 100 * np.cos(x * 9.0 / w - y * 7.0 / h)
    b = 127.5 + 100 * np.sin((x / w + y / h) * 5.0) * np.cos(x * 13.0 / w)
    img = np.stack([r, g, b], -1) + rng.normal(0, 6, (h, w, 3))
    np.clip(img, 0, 255).astype(np.uint8).tofile(f"{work}/synthetic-{w}x{h}.rgb")
PY

# (d) Timing.
printf '\n== hash only, same RGB8 pixels in memory, single thread (median ms) ==\n'
printf '%-12s %10s %12s %12s %10s %10s %10s  %s\n' size ours "C++ luma+h" "C++ core" pdqhash "vs C++" "vs py" "hashes"
for size in 1024x768 1000x750 4000x3000; do
  w=${size%x*}; h=${size#*x}; f=$work/synthetic-$size.rgb
  reps=$repeats; [ "$size" = 4000x3000 ] && reps=$repeats_large
  IFS=$'\t' read -r _ _ _ ours_ms _ ours_hash ours_q < <("$ours" --repeats "$reps" --raw "$size" "$f")
  cpp_luma=-; cpp_core=-; cpp_hash=-
  if [ -n "$cpp_bin" ]; then
    IFS=$'\t' read -r cpp_luma cpp_core cpp_hash _ < <("$cpp_bin" "$f" "$w" "$h" "$reps")
  fi
  py_ms=-; py_hash=-
  if [ "$have_python" = 1 ]; then
    read -r py_ms py_hash < <(python3 - "$f" "$w" "$h" "$reps" <<'PY'
import sys, time, statistics, numpy as np, pdqhash
f, w, h, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
img = np.fromfile(f, dtype=np.uint8).reshape(h, w, 3)
bits, q = pdqhash.compute(img)
times = []
for _ in range(reps):
    t = time.perf_counter(); pdqhash.compute(img); times.append((time.perf_counter() - t) * 1e3)
print(f"{statistics.median(times):.4f}", "%064x" % int("".join(map(str, bits)), 2))
PY
)
  fi
  agree="agree"
  [ "$cpp_hash" = - ] || [ "$cpp_hash" = "$ours_hash" ] || agree="DISAGREE(C++ $cpp_hash)"
  [ "$py_hash" = - ] || [ "$py_hash" = "$ours_hash" ] || agree="$agree DISAGREE(py $py_hash)"
  ratio() { [ "$2" = - ] && echo - || awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", b / a}'; }
  printf '%-12s %10s %12s %12s %10s %10s %10s  %s\n' "$size" "$ours_ms" "$cpp_luma" "$cpp_core" "$py_ms" \
    "$(ratio "$ours_ms" "$cpp_luma")" "$(ratio "$ours_ms" "$py_ms")" "$agree ($ours_hash q=$ours_q)"
done
echo "(vs C++ = C++ luma+hash / ours; vs py = pdqhash / ours; higher is better for us)"

printf '\n== decode + hash on the JPEG vectors (median ms) ==\n'
printf '%-20s %10s %16s %8s  %s\n' file ours "Pillow+pdqhash" ratio hashes
for f in "$vectors"/jpeg/*.jpg; do
  IFS=$'\t' read -r name _ _ _ ours_ms ours_hash _ < <("$ours" --repeats "$repeats" "$f")
  py_ms=-; py_hash=-
  if [ "$have_python" = 1 ]; then
    read -r py_ms py_hash < <(python3 - "$f" "$repeats" <<'PY'
import sys, time, statistics, numpy as np, pdqhash
from PIL import Image
f, reps = sys.argv[1], int(sys.argv[2])
def run():
    with Image.open(f) as im:
        return pdqhash.compute(np.asarray(im.convert("RGB")))
bits, q = run()
times = []
for _ in range(reps):
    t = time.perf_counter(); run(); times.append((time.perf_counter() - t) * 1e3)
print(f"{statistics.median(times):.4f}", "%064x" % int("".join(map(str, bits)), 2))
PY
)
  fi
  if [ "$py_hash" = - ]; then d=-; else
    d=$(python3 -c "print(bin(int('$ours_hash',16)^int('$py_hash',16)).count('1'))")
  fi
  ratio=$([ "$py_ms" = - ] && echo - || awk -v a="$ours_ms" -v b="$py_ms" 'BEGIN {printf "%.2fx", b / a}')
  printf '%-20s %10s %16s %8s  %s\n' "$name" "$ours_ms" "$py_ms" "$ratio" "distance $d bits (different JPEG decoders)"
done
