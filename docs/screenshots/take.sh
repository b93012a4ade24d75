#!/usr/bin/env bash
# Screenshots of every page at a phone's width (390 px) and a laptop's
# (1,440 px), against a real node with some load, runaways and posts.
#   docs/screenshots/take.sh [path/to/owl]      (default: target/release/owl)
# Needs chromium. Writes docs/screenshots/<page>-<width>.png.
set -euo pipefail
cd "$(dirname "$0")"
owl=${1:-../../target/release/owl}
port=4199
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
"$owl" serve --bind 127.0.0.1:$port --data-dir "$data" --public-dashboards \
  --load 20000 --admin-token screenshot-token-0123456789 >"$data/log" 2>&1 &
server=$!
until curl -fs "http://127.0.0.1:$port/api/health" >/dev/null; do sleep 0.2; done
api() { curl -fs -H 'content-type: application/json' "$@" >/dev/null || true; }
for n in 13 -1 -1 9999999999 100; do
  api -d "{\"input\":\"$n\"}" "http://127.0.0.1:$port/api/sum?wait_ms=0"
done
for text in "Links and monitors" "Supervision trees, restart intensity" "Preemption, even in WebAssembly"; do
  api -d "{\"text\":\"$text\",\"author\":\"audience\"}" "http://127.0.0.1:$port/api/board/building-blocks"
done
sleep 3 # a few seconds of load history for the charts
shoot() { # name path width height
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="$3,$4" --virtual-time-budget=4000 \
    --screenshot="$1-$3.png" "http://127.0.0.1:$port$2" 2>/dev/null
}
# Open the process list once: it starts the node's sampling profiler, whose
# first window of CPU shares takes a second.
shoot warm-up /dashboard/processes 390 300 && rm -f warm-up-390.png
sleep 2
# A runaway of its own for the process page (its pid "<0.N.0>" gives N).
runaway=$(curl -fs -H 'content-type: application/json' -d '{"input":"-1"}' \
  "http://127.0.0.1:$port/api/sum?wait_ms=0" | grep -o '<0\.[0-9]*\.' | tr -dc 0-9 || true)
for size in "390 844" "1440 900"; do
  set -- $size
  shoot sum / "$1" "$2"
  shoot load /load "$1" "$2"
  shoot board /board/building-blocks "$1" "$2"
  shoot processes /dashboard/processes "$1" "$2"
  [ -n "$runaway" ] && shoot process "/dashboard/processes/$runaway" "$1" "$2"
  shoot topics /board "$1" "$2"
  shoot system /dashboard/system "$1" "$2"
  shoot tree /dashboard/tree "$1" "$2"
  shoot login /login "$1" "$2"
done
ls -1 ./*.png
