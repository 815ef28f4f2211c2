#!/usr/bin/env bash
# Refreshes cmd/sluice/release.pgo, the CPU profile that `make build` and the benchmark build the
# gateway with (Go's profile-guided optimization: hotter call sites inlined, hot interface calls
# devirtualized). The profile is of the request path under the benchmark's own load, merged from
# the empty pipeline at 256 and 64 connections, the quickstart pipeline and p2c_ewma over three
# targets, so that no one configuration's path is optimized at the others' expense.
#
#   testbed/bench/pgo.sh     # about 2 minutes; run it alone, as the benchmark
#
# The profiled gateway is itself built with the current profile, as Go recommends: a profile of a
# PGO build still describes the source's hot paths.
set -euo pipefail
cd "$(dirname "$0")/../.."
. testbed/bench/prepare.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
profiles=()
for spec in empty:256:20s empty:64:15s quickstart:64:20s p2c:64:10s; do
  IFS=: read -r variant conns dur <<<"$spec"
  out="$tmp/$variant-$conns"
  mkdir -p "$out"
  taskset -c 0 bin/bench profile -variant "$variant" -c "$conns" -d "$dur" -out "$out" >"$out/log" 2>&1 ||
    { cat "$out/log" >&2; exit 1; }
  profiles+=("$out/profile-$variant-cpu.pprof")
done
go tool pprof -proto "${profiles[@]}" >"$tmp/merged.pgo"
mv "$tmp/merged.pgo" "$pgo"
echo "wrote $pgo ($(wc -c <"$pgo") bytes) from ${#profiles[@]} profiles"
