#!/usr/bin/env bash
# Serves the forward_auth example: the demo authorization service (9100), an echo upstream
# (9101) and the gateway (8080), stopped together with Ctrl-C. Build the binaries first:
# `make build` (bin/sluice, bin/testbed).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/testbed" auth -listen 127.0.0.1:9100 >/dev/null &
pids+=($!)
"$bin/testbed" upstream -listen 127.0.0.1:9101 -name app >/dev/null &
pids+=($!)
cat <<'TXT'

Sluice forward_auth example: gateway on http://127.0.0.1:8080, authorization service on
127.0.0.1:9100. In another terminal (see examples/forward-auth/README.md):

  curl -si http://127.0.0.1:8080/api/items                                          # 401
  curl -s  -H 'Authorization: Bearer bob-token' http://127.0.0.1:8080/api/items      # 200, as bob
  curl -si -X POST -H 'Authorization: Bearer bob-token' http://127.0.0.1:8080/api/items   # 403
  curl -s  -X POST -H 'Authorization: Bearer alice-token' http://127.0.0.1:8080/api/items # 200, as alice

TXT
"$bin/sluice" run -c examples/forward-auth/gateway.hcl &
pids+=($!)
wait "${pids[-1]}"
