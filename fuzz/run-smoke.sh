#!/usr/bin/env bash
# Fuzz smoke run for CI: for every target, replay the committed seed corpus, then fuzz for
# SECONDS (default 20). Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass
# the nightly-only sanitizer flags. New corpus entries go to fuzz/corpus/ (not committed).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# The video_bytes target runs ffmpeg and ffprobe (tests/run.sh installs them too).
if ! command -v ffprobe >/dev/null 2>&1; then
  echo "== installing ffmpeg for the video_bytes target"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -q && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends ffmpeg
fi
export RUSTC_BOOTSTRAP=1
for target_file in fuzz_targets/*.rs; do
  target=$(basename "$target_file" .rs)
  mkdir -p "corpus/$target"
  echo "== fuzz $target: replay seeds/$target"
  cargo fuzz run "$target" "seeds/$target" -- -runs=0
  echo "== fuzz $target: ${seconds}s"
  cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
