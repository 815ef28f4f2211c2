#!/usr/bin/env bash
# Serves the API keys example: a testbed upstream on 9101 and the gateway on 8080, stopped together
# with Ctrl-C. Build the binaries first: `make build`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/testbed" upstream -listen 127.0.0.1:9101 -name api >/dev/null &
pids+=($!)
cat <<'TXT'

Sluice API keys example: gateway on http://127.0.0.1:8080 (see examples/api-keys/README.md):

  curl -si http://127.0.0.1:8080/items                                                     # 401
  curl -si http://127.0.0.1:8080/items -H 'X-API-Key: demo-mobile-4f1c2a9be07d4a3c9d55e1f0a7b3c812'   # 200
  for i in $(seq 7); do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:8080/items -H 'X-API-Key: demo-mobile-4f1c2a9be07d4a3c9d55e1f0a7b3c812'; done; echo

TXT
"$bin/sluice" run -c examples/api-keys/gateway.hcl &
pids+=($!)
wait "${pids[-1]}"
