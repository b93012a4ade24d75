#!/usr/bin/env bash
# Refreshes vendor/ from the exact versions in package.json (needs npm).
# Version numbers are part of the file names, so a browser never mixes an old
# cached file with a new page; bump them in src/assets.rs too.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --save-exact
m=node_modules
cp "$m/htmx.org/dist/htmx.min.js" vendor/htmx-2.0.11.min.js
cp "$m/htmx-ext-ws/dist/ws.min.js" vendor/htmx-ext-ws-2.0.4.min.js
cp "$m/idiomorph/dist/idiomorph-ext.min.js" vendor/idiomorph-ext-0.8.0.min.js
cp "$m/uplot/dist/uPlot.iife.min.js" vendor/uPlot-1.6.32.iife.min.js
cp "$m/uplot/dist/uPlot.min.css" vendor/uPlot-1.6.32.min.css
rm -rf "$m"
