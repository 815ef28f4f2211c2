#!/usr/bin/env bash
# Serves the CORS example: a testbed upstream on 9101 and the gateway (the app's page on 8081, the
# API on 8080), stopped together with Ctrl-C. Build the binaries first: `make build`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/testbed" upstream -listen 127.0.0.1:9101 -name api >/dev/null &
pids+=($!)
cat <<'TXT'

Sluice CORS example: open http://127.0.0.1:8081/ in a browser (the API is http://127.0.0.1:8080/api/).
With curl (see examples/cors/README.md):

  curl -si -X OPTIONS http://127.0.0.1:8080/api/items/1 -H 'Origin: http://127.0.0.1:8081' -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type'
  curl -si -X OPTIONS http://127.0.0.1:8080/api/items/1 -H 'Origin: http://evil.example' -H 'Access-Control-Request-Method: PUT'

TXT
"$bin/sluice" run -c examples/cors/gateway.hcl &
pids+=($!)
wait "${pids[-1]}"
