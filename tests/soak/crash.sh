#!/usr/bin/env bash
# Soak run of the kill -9 harness (tests/crash.rs) against a release build: TRIALS kills
# (default 1000) of `hashsieve list apply` at random moments, many of them mid-compaction,
# each followed by a check that every acknowledged batch is there whole, that no
# unacknowledged batch is half there, and that the directory verifies.
#
#   bash tests/soak/crash.sh [TRIALS]        (HASHSIEVE_CRASH_SEED=N replays a run)
set -euo pipefail
cd "$(dirname "$0")/../.."
export HASHSIEVE_CRASH_TRIALS=${1:-1000}
cargo test --release -p hashsieve-cli --test crash -- --nocapture
