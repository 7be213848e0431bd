#!/usr/bin/env bash
# The Debian package, tested the way an operations team meets it: build it, check it with
# lintian, install it with dpkg on this machine, verify its systemd unit, run the installed
# daemon with the shipped configuration against an index of the demo lists, get verdicts over
# HTTP, and purge it. Needs root (or sudo) and a Debian system; CI runs it. It removes a
# hashsieve package already installed here.
#
#   bash packaging/debian/test.sh
#
# Where systemd is not PID 1 (containers, CI), the unit cannot be started by systemd: then the
# daemon is started as the unit would start it (its user, no new privileges, no capabilities)
# under strace, and every system call it made is checked against the unit's SystemCallFilter.
# What could not be checked is said at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

say() { printf '\n-- %s\n' "$*"; }
fail() { printf 'packaging/debian/test.sh: FAILED: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
needs=()
command -v lintian >/dev/null 2>&1 || needs+=(lintian)
command -v strace >/dev/null 2>&1 || needs+=(strace)
command -v curl >/dev/null 2>&1 || needs+=(curl)
command -v systemd-analyze >/dev/null 2>&1 || needs+=(systemd)
command -v man >/dev/null 2>&1 || needs+=(man-db)
if [ ${#needs[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${needs[@]}"
fi

say "build"
started=$(date +%s)
deb=$(bash packaging/debian/build.sh | tail -n 1)
[ -f "$deb" ] || fail "build.sh printed no package path"
echo "$deb: $(du -k "$deb" | cut -f1) KiB, Installed-Size $(dpkg-deb -f "$deb" Installed-Size) KiB, built in $(($(date +%s) - started)) s"

say "lintian"
# Errors fail the test; warnings and information are shown.
status=0
tags=$(lintian --fail-on error --display-info "$deb" 2>&1) || status=$?
echo "$tags" | grep -v '^running with root privileges' || true
[ "$status" -eq 0 ] || fail "lintian reports errors (status $status)"

work=$(mktemp -d)
daemon=
cleanup() {
  [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if dpkg-query -W -f '${Status}' hashsieve 2>/dev/null | grep -q 'ok installed'; then
  as_root dpkg --purge hashsieve >/dev/null
fi

say "install"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends adduser >/dev/null
as_root dpkg -i "$deb"
installed=$(dpkg -L hashsieve)
[ "$(dpkg-query --control-show hashsieve conffiles | tr -d ' ')" = /etc/hashsieve/hashsieved.toml ] ||
  fail "the configuration is not the package's one conffile"
getent passwd hashsieve >/dev/null || fail "no system user hashsieve"
[ "$(getent passwd hashsieve | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the system user has a login shell"
[ "$(stat -c '%U:%G %a' /var/lib/hashsieve)" = "hashsieve:hashsieve 750" ] ||
  fail "state directory: $(stat -c '%U:%G %a' /var/lib/hashsieve)"
man -w hashsieve hashsieve-scan hashsieved >/dev/null || fail "man pages not found by man"
for page in hashsieve hashsieved; do
  [ -n "$(man "$page" 2>/dev/null | head -n 3)" ] || fail "man $page shows nothing"
done
bash -c 'source /usr/share/bash-completion/completions/hashsieve && complete -p hashsieve' >/dev/null ||
  fail "bash completion of hashsieve does not load"
unit=$(echo "$installed" | grep '/systemd/system/hashsieved.service$') || fail "no unit installed"
echo "installed: $(echo "$installed" | wc -l) paths; /usr/bin/hashsieve $(/usr/bin/hashsieve --version | cut -d' ' -f2)"

say "systemd-analyze"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
systemd-analyze security --offline=true --threshold=20 "$unit" | tail -n 1 ||
  fail "the unit's exposure is above 2.0 (systemd-analyze security --offline=true $unit)"

say "index of the demo lists, built as the hashsieve user"
lists=$work/lists
mkdir -m 755 "$lists"
cp samples/demo-md5.txt samples/demo-pdq.csv "$lists/"
chmod 755 "$work"
as_root runuser -u hashsieve -- /usr/bin/hashsieve index build --dir /var/lib/hashsieve/lists \
  --list demo-md5="$lists/demo-md5.txt" --kind md5 --list demo-pdq="$lists/demo-pdq.csv" --kind pdq >/dev/null
as_root runuser -u hashsieve -- /usr/bin/hashsieved --config /etc/hashsieve/hashsieved.toml --check-config

say "the installed daemon, with the shipped configuration"
listen=$(grep -E '^listen = ' /etc/hashsieve/hashsieved.toml | head -n 1 | cut -d'"' -f2)
if curl -s -o /dev/null "http://$listen/readyz"; then fail "something already listens on $listen"; fi
# As the unit runs it: its user and group, no new privileges, no capabilities at all; the
# command before it (strace, or nothing) is given as arguments. Sets daemon, pid, ready_ms.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
start_daemon() {
  as_root "$@" setpriv --reuid=hashsieve --regid=hashsieve --init-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- $exec_start >/dev/null 2>"$work/daemon.log" &
  daemon=$!
  local started
  started=$(date +%s%N)
  until curl -s -o /dev/null "http://$listen/readyz"; do
    kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the daemon exited"; }
    [ $(($(date +%s%N) - started)) -lt 30000000000 ] || fail "the daemon did not listen within 30 s"
    sleep 0.01
  done
  ready_ms=$((($(date +%s%N) - started) / 1000000))
  pid=$(pgrep -u hashsieve -x hashsieved)
}
stop_daemon() {
  as_root kill -TERM "$pid"
  wait "$daemon" || fail "the daemon did not stop cleanly on SIGTERM: $(tail -n 3 "$work/daemon.log")"
  daemon=
}
verdict() { curl -s --max-time 10 "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["outcome"])'; }
content() { verdict --data-binary "@samples/images/$1" "http://$listen/v1/match/content"; }

start_daemon
echo "start-up: ready after $ready_ms ms; RSS $(ps -o rss= -p "$pid") KiB"
stop_daemon

start_daemon strace -f -qq -o "$work/trace" -e trace=all -e signal=none
echo "under strace: ready after $ready_ms ms"
[ "$(content wee.jpg)" = known ] || fail "wee.jpg (demo MD5) is not known"
[ "$(content q1050.jpg)" = near_known ] || fail "q1050.jpg (demo PDQ) is not near_known"
[ "$(content misc-small.png)" = unknown ] || fail "misc-small.png (not listed) is not unknown"
md5=$(md5sum samples/images/q0122.jpg | cut -d' ' -f1)
[ "$(curl -s --max-time 10 -d "{\"hashes\":[{\"kind\":\"md5\",\"value\":\"$md5\"}]}" \
  "http://$listen/v1/match/hashes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["outcome"])')" = known ] ||
  fail "the MD5 of q0122.jpg, by md5sum, is not known"
echo "verdicts over HTTP: wee.jpg known, q1050.jpg near_known, misc-small.png unknown; q0122.jpg's MD5 known"
echo "RSS after the requests: $(ps -o rss= -p "$pid") KiB"
# ExecReload's signal: the daemon reloads and keeps answering.
as_root kill -HUP "$pid"
for _ in $(seq 200); do grep -q 'index reloaded' "$work/daemon.log" && break; sleep 0.05; done
grep -q 'index reloaded' "$work/daemon.log" || fail "no reload within 10 s of SIGHUP"
[ "$(content wee.jpg)" = known ] || fail "no answer after SIGHUP"
echo "SIGHUP: index reloaded, still answering"
stop_daemon

say "system calls against the unit's SystemCallFilter"
expand() {
  systemd-analyze syscall-filter "$1" | tail -n +2 | sed 's/^ *//' | grep -v '^#' | grep -v '^$' |
    while read -r entry; do
      case $entry in @*) expand "$entry" ;; *) echo "$entry" ;; esac
    done
}
# The unit's three lines: the groups allowed, those taken away (~), the calls given back.
filter=$(sed -n 's/^SystemCallFilter=//p' "$unit")
allowed=$(echo "$filter" | head -n 1)
denied=$(echo "$filter" | sed -n '2s/^~//p')
given_back=$(echo "$filter" | sed -n '3p')
expand "$allowed" | sort -u >"$work/allowed"
for group in $denied; do expand "$group"; done | sort -u >"$work/denied"
{ comm -23 "$work/allowed" "$work/denied"; for call in $given_back; do echo "$call"; done; } |
  sort -u >"$work/permitted"
# The calls of setpriv before it executes the daemon are not the daemon's.
awk 'found { print } /execve\("\/usr\/bin\/hashsieved"/ { found = 1 }' "$work/trace" |
  sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/^([a-z0-9_]+)\(.*/\1/' |
  grep -E '^[a-z0-9_]+$' | sort -u >"$work/used"
echo "$(wc -l <"$work/used") distinct system calls made by hashsieved"
outside=$(comm -23 "$work/used" "$work/permitted")
[ -z "$outside" ] || fail "hashsieved made system calls its unit forbids: $(echo $outside)"

if [ -d /run/systemd/system ]; then
  say "under systemd"
  as_root systemctl start hashsieved
  for _ in $(seq 300); do curl -s -o /dev/null "http://$listen/readyz" && break; sleep 0.1; done
  [ "$(content wee.jpg)" = known ] ||
    fail "the service does not answer"
  as_root systemctl reload hashsieved
  [ "$(content wee.jpg)" = known ] ||
    fail "the service does not answer after systemctl reload"
  as_root systemctl stop hashsieved
  echo "systemctl start, reload, stop: the service answered under its sandbox"
fi

say "purge"
as_root dpkg --purge hashsieve
left=$(echo "$installed" | while read -r path; do [ -f "$path" ] && echo "$path"; done || true)
[ -z "$left" ] || fail "files left after purge: $left"
[ ! -e /var/lib/hashsieve ] || fail "/var/lib/hashsieve left after purge"
[ ! -e /etc/hashsieve ] || fail "/etc/hashsieve left after purge"
! pgrep -u hashsieve >/dev/null || fail "processes of hashsieve left"

say "not checked here"
if [ -d /run/systemd/system ]; then
  echo "(nothing: systemd is PID 1)"
else
  echo "systemd is not PID 1 on this machine: the unit was verified, but not started by systemd;"
  echo "its sandbox (ProtectSystem, PrivateTmp, namespaces, the system call filter itself) was"
  echo "not in force, and systemctl start/reload/stop were not run. The daemon ran as the unit's"
  echo "user with no new privileges and no capabilities, and its system calls were checked"
  echo "against the filter."
fi
echo "packaging/debian/test.sh: passed"
