#!/usr/bin/env bash
# The takedown loop (issue #21, item 10): what happens after the verdict, simulated.
#
# benches/src/bin/takedown-sim.rs puts reported URLs on six simulated hosting providers on
# loopback (127.0.1.1 … 127.0.6.1; generated IP databases put two in NL, the hotline's
# country, two in DE, with a partner hotline, two in the US, without), each URL serving a
# benign generated picture until a seeded removal time (404, 410, other content, refused, or
# never). It starts hashsieved with a triage store and a short schedule (re-checks every 2 s,
# jitter 10%, blocked after 3 s), reports and confirms every URL, takes the content down at its
# true times and prints:
#   - cases opened, notices delivered (the webhook receiver's count and the cases notified),
#     referrals;
#   - removals detected and the detection delay after the true removal (median, p90, max)
#     against the re-check interval × (1 + jitter);
#   - URL-seconds the block list covered content still online and content already gone, and
#     URLs still listed more than one interval after they were seen gone (goal 0);
#   - re-checks per second one daemon makes with checks_per_host = 2, unpaced;
#   - median and p99 latency of GET /v1/review/groups and POST /v1/match/hashes with re-checks
#     running and without (alternating phases, 6,000 calls of each), and the ratio, beside the
#     noise (the same ratio between two phases without): at the default pace
#     (max_checks_per_sec = 20) and unpaced;
#   - kill -9 durability: SIGKILL during re-checks, restart, every case read back (none lost or
#     duplicated, each case's check slots 0..n once).
#
#   bash benches/compare/takedown.sh          # 150 URLs, 60 s of removals, 20 kill trials (~4 minutes)
#   bash benches/compare/takedown.sh quick    # 48 URLs, 20 s, 5 trials (~1 minute)
#   SEED=7 bash benches/compare/takedown.sh   # other removals
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=()
[[ ${1:-} == quick ]] && mode=(--quick)
work=$(mktemp -d /var/tmp/hashsieve-takedown.XXXXXX)
sim=
cleanup() {
    # The simulation kills its daemons itself; if it was killed first, they are still its
    # children.
    if [[ -n $sim ]]; then
        pkill -P "$sim" 2>/dev/null || true
        kill "$sim" 2>/dev/null || true
        wait "$sim" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && cargo build --release -q -p hashsieve-daemon -p hashsieve-benches --bin hashsieved --bin takedown-sim)
bin=${CARGO_TARGET_DIR:-$root/target}/release

# In the background so that the trap can end it and what it started.
"$bin/takedown-sim" "${mode[@]}" --seed "${SEED:-1}" --hashsieved "$bin/hashsieved" --work "$work" &
sim=$!
wait "$sim"
