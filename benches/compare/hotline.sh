#!/usr/bin/env bash
# Hotline triage (issue: Hotline triage): how many reports an analyst still opens when a
# hotline's reports go through hashsieved over Redis, and how the hashing stage scales.
#
# benches/src/bin/hotline-sim.rs builds a report stream from benign pictures only (the sample
# images, the PDQ reference photos, and generated pictures), with a seeded ground truth: some
# pictures in an external hash list, exact re-reports, edited copies (resize, re-encode, crop,
# mirror, brightness, combinations) of earlier reports, and new pictures. It starts its own
# redis-server and hashsieved daemons (one deciding daemon with the verdict memory and review
# API, workers = 0; hashing daemons with workers = 1 each), pushes the stream in shifts, and
# plays an analyst who assesses every pending review group after each shift. It prints:
#   - the share of items opened by a person against the share of genuinely new pictures
#     (goal: within 1 percentage point), naive (every item) and exact-hash-only matching,
#     with near_known_is_known = true (the default) and = false;
#   - correctness against the ground truth, and why any extra item was opened (each edited
#     copy's PDQ distance to its original);
#   - throughput, first XADD to last result, with one hashing daemon and with two (median of
#     alternating rounds, and the ratio; also the hashing stage alone, and each process's CPU
#     seconds), with the machine's core count.
#
#   bash benches/compare/hotline.sh          # 400 pictures, 1,600 reports, 5 rounds (~2 minutes)
#   bash benches/compare/hotline.sh quick    # 80 pictures, 320 reports, 3 rounds (~30 seconds)
#   SEED=7 bash benches/compare/hotline.sh   # another stream
#
# It installs redis-server with apt-get when missing. The PDQ reference photos are taken from
# VECTORS (default tests/vectors/pdq).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=()
[[ ${1:-} == quick ]] && mode=(--quick)
vectors=${VECTORS:-$root/tests/vectors/pdq}
work=$(mktemp -d /var/tmp/hashsieve-hotline.XXXXXX)
sim=
cleanup() {
    # The simulation kills its redis-server and daemons itself; if it was killed first, they
    # are still its children.
    if [[ -n $sim ]]; then
        pkill -P "$sim" 2>/dev/null || true
        kill "$sim" 2>/dev/null || true
        wait "$sim" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

sudo=$([[ $(id -u) == 0 ]] || echo sudo)
if ! command -v redis-server >/dev/null; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2 \
        || { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2; }
fi
(cd "$root" && cargo build --release -q -p hashsieve-daemon -p hashsieve-benches --bin hashsieved --bin hotline-sim)
bin=${CARGO_TARGET_DIR:-$root/target}/release
photos=(--photos "$root/samples/images")
[[ -d $vectors/images ]] && photos+=(--photos "$vectors/images")

# In the background so that the trap can end it and what it started.
"$bin/hotline-sim" "${mode[@]}" --seed "${SEED:-1}" "${photos[@]}" --hashsieved "$bin/hashsieved" --work "$work" &
sim=$!
wait "$sim"
