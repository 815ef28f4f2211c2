#!/usr/bin/env bash
# Serves the canary example: three demo upstreams (v1, v2 and a shadow) and the gateway, stopped
# together with Ctrl-C. Build the binaries first: `make build` (bin/sluice, bin/testbed).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/testbed" upstream -listen 127.0.0.1:9101 -name v1 >/dev/null &
pids+=($!)
"$bin/testbed" upstream -listen 127.0.0.1:9102 -name v2 >/dev/null &
pids+=($!)
"$bin/testbed" upstream -listen 127.0.0.1:9103 -name shadow >/dev/null &
pids+=($!)
cat <<'TXT'

Sluice canary example: gateway on http://127.0.0.1:8080, admin API on http://127.0.0.1:9901.
In another terminal (see examples/canary/README.md):

  for i in $(seq 200); do curl -s -o /dev/null -D - http://127.0.0.1:8080/ | grep -i '^x-upstream'; done | sort | uniq -c
  curl -si -H 'x-canary: 1' http://127.0.0.1:8080/ | grep -i '^x-upstream'
  curl -si --cookie canary=v2 http://127.0.0.1:8080/ | grep -i '^x-upstream'
  curl -s http://127.0.0.1:9901/metrics | grep -E 'sluice_mirror|sluice_upstream_circuit'

TXT
"$bin/sluice" run -c examples/canary/gateway.hcl &
pids+=($!)
wait "${pids[-1]}"
