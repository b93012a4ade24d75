#!/usr/bin/env bash
# The soak run of docs/reliability.md: one node on one scheduler with 100,000
# background jobs, live users submitting slow and runaway inputs, API sums,
# dashboards refreshing; RSS, open files and process count sampled every 10 s.
#
#   bench/soak.sh [MINUTES] [PORT]      (defaults: 10, 4790)
#
# Prints one line per sample and a verdict at the end. Needs a release build:
# `cargo build --release -p owl`.
set -euo pipefail

minutes=${1:-10}
port=${2:-4790}
owl=${OWL:-./target/release/owl}
data=$(mktemp -d)
url="http://127.0.0.1:$port"
seconds=$((minutes * 60))

$owl serve --bind "127.0.0.1:$port" --data-dir "$data" --schedulers 1 \
    --load 100000 --reap-orphans 30s 2>"$data/node.log" &
node=$!
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done
token=$(cat "$data/admin-token")

processes() {
    curl -sf -H "Authorization: Bearer $token" "$url/metrics" |
        awk '$1 == "owl_processes" { print $2 }'
}
sample() {
    local rss fds
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$node/status")
    fds=$(ls "/proc/$node/fd" | wc -l)
    echo "$1 $((rss / 1024)) $fds $(processes)"
}

sleep 5 # the 100,000 jobs come up
baseline=$(processes)
echo "# baseline: $baseline processes with the load running, before any visitor"

# The visitors: slow and runaway inputs on the live page, sums on the API.
load() { $owl load --url "$url" --ramp 30s --hold "$((seconds - 30))s" --json "$@" 2>/dev/null; }
load --users 60 --input 9999999999 >"$data/slow.json" &
visitors=($!)
load --users 20 --input=-1 >"$data/runaway.json" &
visitors+=($!)
load --users 20 --mode api --input 5 >"$data/api.json" &
visitors+=($!)
(while :; do
    for page in dashboard/processes dashboard/system load metrics; do
        curl -sf -o /dev/null -H "Authorization: Bearer $token" "$url/$page" || echo "dashboard $page failed" >&2
    done
    sleep 1
done) &
dashboards=$!

echo "# seconds rss_mb open_fds processes"
start=$(date +%s)
while [ $(($(date +%s) - start)) -lt "$seconds" ]; do
    sample $(($(date +%s) - start))
    sleep 10
done
wait "${visitors[@]}" || echo "# a load generator failed" >&2
kill $dashboards
sleep 35 # the orphan reaper's 30 s grace, then the count settles
echo "# after the visitors left:"
sample $(($(date +%s) - start))
echo "# baseline $baseline; slow users, runaway users, api users:"
for f in slow runaway api; do
    jq -c '{users_connected, submit_ok, submit_failed, http_503, errors, page_p99_ms, live_sum_p99_ms, api_sum_p99_ms, page_max_ms, live_sum_max_ms, api_sum_max_ms}' "$data/$f.json" 2>/dev/null || cat "$data/$f.json"
done
kill -0 $node && echo "# node still up" || echo "# NODE DIED"
