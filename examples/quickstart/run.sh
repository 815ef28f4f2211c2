#!/usr/bin/env bash
# Serves the quickstart: the OTLP receiver, two demo upstreams and the gateway, stopped together
# with Ctrl-C. `make run` builds the binaries and the Wasm filter first.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# OTLPRECEIVER_FLAGS filters the printed traces, e.g. "-status 5xx" (testbed/otlpreceiver/README.md).
"$bin/otlpreceiver" -listen 127.0.0.1:4318 ${OTLPRECEIVER_FLAGS:-} &
pids+=($!)
for n in 1 2; do
  "$bin/testbed" upstream -listen "127.0.0.1:900$n" -name "demo-$n" >/dev/null &
  pids+=($!)
done

secret="${SLUICE_DEMO_JWT_SECRET:-quickstart-demo-secret-change-me-0123456789}"
token=$("$bin/sluice" token -hmac-secret "$secret" -iss https://sluice.quickstart/ -aud demo -sub alice -ttl 24h)
cat <<TXT

Sluice quickstart: gateway on http://127.0.0.1:8080, admin API on http://127.0.0.1:9901.
Dashboard: http://127.0.0.1:9901/ui/ (pipelines, upstream health, per-filter cost, waterfalls).
Traces print below as trees; access log lines too. In another terminal:

  TOKEN=$token
  curl -i http://127.0.0.1:8080/api/hello                                  # 401: no token
  curl -i -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8080/api/hello # 200, A/B variant, X-Cache, trace id
  curl -s -b ab=b -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8080/api/hello | grep name # variant b: demo-2
  for i in \$(seq 20); do curl -s -o /dev/null -w '%{http_code} ' -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8080/api/x; done; echo  # 429 once the burst (5) is spent, then 10/s
  curl -s --compressed -D - -o /dev/null http://127.0.0.1:8080/big?size=64KiB # Content-Encoding: zstd/br/gzip
  curl -s http://127.0.0.1:9901/upstreams                                  # target health
  curl -s http://127.0.0.1:9901/metrics | grep sluice_requests_total       # Prometheus metrics

TXT
"$bin/sluice" run -c examples/quickstart/gateway.hcl &
pids+=($!)
wait "${pids[-1]}"
