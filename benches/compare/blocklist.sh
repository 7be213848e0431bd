#!/usr/bin/env bash
# The URL block list formats (issue #21, item 6) at ISP scale, in one run:
#
#  1. each writer on ENTRIES synthetic entries (1% whole hosts, 9% single https URLs, 90% http
#     URLs twenty to a host; benches/src/bin/blocklist-figures.rs): median of 3, file size;
#  2. Squid 5 loading the three ACL files: `squid -k parse` wall time and peak memory, then a
#     started Squid: the time until it answers its first request, and a request's time to an
#     unlisted host (the dstdomain filter), to a host on the URL list but an unlisted path (all
#     regexes tried) and to a listed URL;
#  3. named-checkzone on the zone.
#
#   bash benches/compare/blocklist.sh            # 1,000,000 entries (~2 minutes, ~5 GB of RAM)
#   bash benches/compare/blocklist.sh quick      # 10,000 entries
#
# It installs squid and bind9-utils with apt-get when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
entries=1000000
[[ ${1:-} == quick ]] && entries=10000
work=$(mktemp -d /var/tmp/hashsieve-blocklist.XXXXXX)
squid_pid=
cleanup() {
    [[ -n $squid_pid ]] && kill "$squid_pid" 2>/dev/null && wait "$squid_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

missing=()
[[ -x /usr/sbin/squid ]] || missing+=(squid)
command -v named-checkzone >/dev/null || missing+=(bind9-utils)
command -v curl >/dev/null || missing+=(curl)
if [[ ${#missing[@]} -gt 0 ]]; then
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >&2
fi
(cd "$root" && cargo build --release -q -p hashsieve-benches --bin blocklist-figures)

echo "1. the writers, $entries entries (median of 3)" >&2
"$root/target/release/blocklist-figures" "$work" --entries "$entries"

# Squid started by root runs as `proxy`, which must read the files and write its logs.
chmod 755 "$work" && chmod 644 "$work"/*
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/squid.conf" <<CONF
http_port 127.0.0.1:$port
pid_filename $work/squid.pid
cache_log $work/cache.log
access_log none
coredump_dir $work
cache deny all
pinger_enable off
netdb_filename none
shutdown_lifetime 1 seconds
hosts_file $work/hosts
acl hashsieve_whole_hosts dstdomain -n "$work/squid-whole-hosts.txt"
acl hashsieve_url_hosts dstdomain -n "$work/squid-url-hosts.txt"
acl hashsieve_urls url_regex "$work/squid-urls.txt"
http_access deny hashsieve_whole_hosts
http_access deny hashsieve_url_hosts hashsieve_urls
http_access allow all
CONF
listed_url=$(head -1 "$work/squid-urls.txt" | sed -E 's/^\^//; s/\$$//; s/\((.*)\)$/\1/; s/\|.*//; s/\\//g')
listed_host=$(head -1 "$work/squid-url-hosts.txt")
# Squid resolves the hosts requested from this file (to a closed port), not through DNS.
echo "127.0.0.1 $listed_host unlisted.example.net" > "$work/hosts"
chmod 666 "$work/squid.conf" "$work/hosts"; touch "$work/cache.log"; chmod 666 "$work/cache.log"

echo "2. squid -k parse" >&2
/usr/bin/time -f '%e %M' -o "$work/parse.time" /usr/sbin/squid -k parse -f "$work/squid.conf" 2>"$work/parse.log"
read -r parse_seconds parse_kb < "$work/parse.time"
warnings=$(grep -c -i -E 'warning|error' "$work/parse.log" || true)
echo "{\"squid\": \"parse\", \"entries\": $entries, \"seconds\": $parse_seconds, \"peak_rss_mb\": $((parse_kb / 1024)), \"warning_lines\": $warnings}"
grep -i -E 'warning|error' "$work/parse.log" | sed 's/^/  squid: /' >&2 || true

echo "2. a started squid" >&2
started=$(date +%s.%N)
/usr/sbin/squid -N -f "$work/squid.conf" >/dev/null 2>&1 &
squid_pid=$!
# Any answer counts: the first request Squid gets through its rules.
until curl -s -o /dev/null -m 5 -x "http://127.0.0.1:$port" http://127.0.0.1:1/ 2>/dev/null; do
    kill -0 "$squid_pid" 2>/dev/null || { echo "squid exited; see $work/cache.log" >&2; exit 1; }
    (( $(date +%s) - ${started%.*} > 900 )) && { echo "squid did not answer within 15 minutes" >&2; exit 1; }
    sleep 0.2
done
first=$(echo "$(date +%s.%N) - $started" | bc)
rss_kb=$(ps -o rss= -p "$squid_pid" | tr -d ' ')
echo "{\"squid\": \"first answer\", \"entries\": $entries, \"seconds\": $first, \"rss_mb\": $((rss_kb / 1024))}"
request() { # what, url: the median of 5 requests' total time
    for _ in 1 2 3 4 5; do
        curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}\n' -x "http://127.0.0.1:$port" "$2"
    done | sort -k2 -n | sed -n 3p | {
        read -r code seconds
        echo "{\"squid\": \"request\", \"entries\": $entries, \"to\": \"$1\", \"status\": $code, \"median_seconds\": $seconds}"
    }
}
request "unlisted host" "http://unlisted.example.net/x.jpg"
request "listed host, unlisted path" "http://$listed_host/not/listed.jpg"
request "listed URL" "$listed_url"

echo "3. named-checkzone" >&2
/usr/bin/time -f '%e %M' -o "$work/zone.time" named-checkzone rpz.hashsieve.example. "$work/rpz.zone" >"$work/zone.log"
read -r zone_seconds zone_kb < "$work/zone.time"
echo "{\"named-checkzone\": \"$(tail -1 "$work/zone.log")\", \"seconds\": $zone_seconds, \"peak_rss_mb\": $((zone_kb / 1024))}"
