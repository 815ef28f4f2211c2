#!/usr/bin/env bash
# Serves the quickstart: two demo upstreams and the gateway, stopped together with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for n in 1 2; do
  "$bin/testbed" upstream -listen "127.0.0.1:900$n" -name "demo-$n" >/dev/null &
  pids+=($!)
done

cat <<'TXT'

Sluice quickstart: gateway on http://127.0.0.1:8080, admin API on http://127.0.0.1:9901
Try, in another terminal:
  curl -i http://127.0.0.1:8080/api/hello          # proxied to a demo upstream, /api stripped
  curl -s http://127.0.0.1:9901/upstreams          # target health
  curl -s http://127.0.0.1:9901/metrics | head     # Prometheus metrics

TXT
"$bin/sluice" run -c examples/quickstart/gateway.hcl &
pids+=($!)
wait "${pids[-1]}"
