#!/usr/bin/env bash
# Sluice's load benchmark against nginx, HAProxy and the fasthttp floor, on this machine, in one
# interleaved invocation. Writes testbed/results/bench-MODE.{md,svg,json}.
#
#   testbed/bench/run.sh quick    # 64 connections, 3 × 10 s per configuration, < 10 minutes
#   testbed/bench/run.sh full     # + 256 connections, 16 KiB JSON with gzip, per-filter costs, fixed rate
#   testbed/bench/run.sh smoke    # 1 × 1 s each: checks the harness, figures mean nothing
#
# Extra flags go to `bench run` (see `bin/bench run -h`), e.g. -only 'nginx|sluice empty'.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-quick}
[ $# -gt 0 ] && shift

# Peers and tools from Debian, installed when missing.
missing=()
for tool in nginx:nginx haproxy:haproxy wrk:wrk taskset:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "the benchmark pins the load to core 0 and the proxies to core 1: it needs 2 cores" >&2
  exit 1
fi

# 10,000 idle connections in the memory test, plus the proxies' upstream sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The gateway as `make build` builds it: with profile-guided optimization (testbed/bench/pgo.sh).
go build -pgo=cmd/sluice/release.pgo -o bin/sluice ./cmd/sluice
go build -o bin/floorproxy ./testbed/cmd/floorproxy
go build -o bin/benchupstream ./testbed/cmd/benchupstream
go build -o bin/bench ./testbed/bench
go build -pgo=cmd/sluice/release.pgo -o bin/sluiceprof ./testbed/bench/sluiceprof

# The harness itself stays on core 0 with the load generator, off the proxies' core.
exec taskset -c 0 bin/bench run -mode "$mode" -out testbed/results "$@"
