#!/usr/bin/env bash
# The newcomer's test: clones the commit under test into CLONE (whose folder must be new and
# empty, so that nothing is beside the clone) and runs the README's quick start there exactly
# as written, the way a user on a new machine would. The first command must print the four
# demo matches and exit 1; the second, the test command, must pass.
#
#   bash .ci/newcomer.sh CLONE
set -euo pipefail
cd "$(dirname "$0")/.."
clone=${1:?usage: .ci/newcomer.sh CLONE}
[ ! -e "$clone" ] || { echo "newcomer: $clone exists" >&2; exit 1; }
[ -z "$(ls -A "$(dirname "$clone")")" ] || { echo "newcomer: $(dirname "$clone") is not empty" >&2; exit 1; }
fail() { echo "newcomer: FAILED: $*" >&2; exit 1; }

commit=$(git rev-parse HEAD)
git clone --quiet --no-local . "$clone"
git -C "$clone" checkout --quiet --detach "$commit"
cd "$clone"

# The quick start's commands: the first sh block after its heading, comments dropped.
mapfile -t commands < <(awk '/^## Quick start/ { section = 1 } section && /^```sh/ { block = 1; next }
  block && /^```/ { exit } block' README.md | sed -E 's/[[:space:]]+#.*$//' | grep -v '^[[:space:]]*$')
[ ${#commands[@]} -eq 2 ] || fail "the README's quick start has ${#commands[@]} commands, not 2"
echo "in $clone at $commit, with nothing beside it:"

echo "\$ ${commands[0]}"
started=$SECONDS
status=0
scan=$(mktemp)
trap 'rm -f "$scan"' EXIT
env -u CARGO_TARGET_DIR bash -c "${commands[0]}" >"$scan" || status=$?
cat "$scan"
echo "(exit status $status, $((SECONDS - started)) s)"
[ "$status" -eq 1 ] || fail "the scan exits $status, not 1 (something matched)"
found=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(m["path"], m["outcome"], m["list"], m["entry_id"], m["kind"], m["value"])
' "$scan" | sort)
expected="samples/images/labelme-q0291.png near_known demo-pdq demo-labelme-rotated pdq
samples/images/q0122.jpg known demo-md5 demo-q0122.jpg md5
samples/images/q1050.jpg near_known demo-pdq demo-q1050 pdq
samples/images/wee.jpg known demo-md5 demo-wee.jpg md5"
[ "$(echo "$found" | cut -d' ' -f1-5)" = "$expected" ] || fail "the scan's matches are not the four demo matches"
# The exact matches by the system's md5sum, not by hashsieve.
echo "$found" | awk '$5 == "md5" { print $6 "  " $1 }' | md5sum --check --quiet || fail "an MD5 match is wrong"

echo "\$ ${commands[1]}"
started=$SECONDS
env -u CARGO_TARGET_DIR bash -c "${commands[1]}" </dev/null || fail "the test command fails"
echo "(the test command: $((SECONDS - started)) s)"
