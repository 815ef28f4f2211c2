#!/usr/bin/env bash
# Sourced by run.sh, pgo.sh and footprint.sh (from the repository's top folder): installs the peers
# and tools the benchmark needs from Debian when missing, plus any "command:package" pairs the
# caller put in extra_tools, checks the machine, and builds the binaries into bin/.
# The gateway is built as `make build` builds it: with profile-guided optimization from
# cmd/sluice/release.pgo (pgo.sh refreshes it), whose path it leaves in $pgo.

missing=()
for tool in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client taskset:util-linux ${extra_tools[@]+"${extra_tools[@]}"}; do
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

pgo=cmd/sluice/release.pgo
# The Makefile's TAGS (see there: without it the binary is 18 MB larger, and so is idle RSS).
go build -tags grpcnotrace -pgo="$pgo" -o bin/sluice ./cmd/sluice
go build -tags grpcnotrace -pgo="$pgo" -o bin/sluiceprof ./testbed/bench/sluiceprof
go build -o bin/floorproxy ./testbed/cmd/floorproxy
go build -o bin/benchupstream ./testbed/cmd/benchupstream
go build -o bin/bench ./testbed/bench
go build -o bin/h2ceiling ./testbed/cmd/h2ceiling
go build -o bin/grpcupstream ./testbed/cmd/grpcupstream
