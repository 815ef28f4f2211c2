#!/usr/bin/env bash
# Sluice's load benchmark against nginx, HAProxy and the fasthttp floor, on this machine, in one
# interleaved invocation. Writes testbed/results/bench-MODE.{md,svg,json}.
#
#   testbed/bench/run.sh quick    # 64 connections and HTTP/2 h2c, 3 × 10 s per configuration, ~10 minutes
#   testbed/bench/run.sh full     # + 256 connections, 16 KiB JSON with gzip, per-filter costs, fixed rate,
#                                 #   HTTP/2 over TLS, TLS keep-alive and handshakes, gRPC unary calls
#   testbed/bench/run.sh smoke    # 1 × 1 s each: checks the harness, figures mean nothing
#
# Extra flags go to `bench run` (see `bin/bench run -h`), e.g. -only 'nginx|sluice empty'.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-quick}
[ $# -gt 0 ] && shift

# Full mode also assembles a WAT guest, to measure the Wasm host's part without a guest runtime.
extra_tools=()
if [ "$mode" = full ]; then extra_tools=(wat2wasm:wabt); fi

. testbed/bench/prepare.sh

# 10,000 idle connections in the memory test, plus the proxies' upstream sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The harness itself stays on core 0 with the load generator, off the proxies' core.
exec taskset -c 0 bin/bench run -mode "$mode" -out testbed/results "$@"
