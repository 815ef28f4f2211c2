#!/usr/bin/env bash
# Counts what one proxied request costs the gateway and the floor in user space, under
# valgrind's cache simulator: instructions, L1 instruction-cache misses, L1 data-cache misses and
# misses of a 1 MiB last-level cache, each per request. CPU time on a shared VM moves by several
# percent from run to run; these counts move by a few, so they show where a gap in CPU time
# comes from (more instructions, or the same instructions waiting on memory).
#
#   testbed/bench/footprint.sh            # 64 and 256 connections, about 3 minutes
#   testbed/bench/footprint.sh 256        # one connection count
#
# Other configurations or builds (an A/B of a change, a filter's cost): FOOTPRINT_CASES lists
# LABEL=BINARY:CONFIG entries, each a sluice binary and a configuration listening on
# 127.0.0.1:18410 with its upstream at 127.0.0.1:18401; FOOTPRINT_HEADER adds headers to every
# request (a key, a token; several separated by newlines), FOOTPRINT_SECONDS sets the counted
# load's length (default 8), FOOTPRINT_KEEP names a folder that keeps each case's callgrind dump
# (LABEL-CONNS.cg, for callgrind_annotate per function), FOOTPRINT_SCHEME=https loads a TLS
# listener (the configuration's; wrk negotiates TLS 1.3 and resumes no sessions in the window),
# FOOTPRINT_TOOL=h2load loads HTTP/2 instead: h2load -t1 with 10 streams per connection, h2c with
# prior knowledge (h2 by ALPN with FOOTPRINT_SCHEME=https), as the benchmark's HTTP/2 rows do; the
# default case is then sluice alone, its configuration with protocols = ["http1", "h2c"] (the
# floor speaks no HTTP/2). h2load makes a number of requests, FOOTPRINT_REQUESTS (default 10000)
# after 5000 to warm up, rather than running for FOOTPRINT_SECONDS: stopped by time, it would
# leave streams in flight, and the gateway's writes to the closed connections raise SIGPIPEs that
# callgrind does not survive. Stack growth makes HTTP/2 counts vary between runs of one build:
# take the median of several. Under valgrind on a busy machine the streams waiting for one of
# the 512 upstream connections (640 streams) may wait past the slot wait and get 503s, which the
# script reports: their error path costs more, so rerun such a case rather than compare it.
#
#   FOOTPRINT_CASES="old=/tmp/sluice-old:/tmp/q.hcl new=bin/sluice:/tmp/q.hcl" \
#     testbed/bench/footprint.sh 64
#
# Run it alone, as the benchmark. The simulated caches are 32 KiB 8-way L1s and a 1 MiB 16-way
# last level, close to one core's L1 and L2 here. Only the proxy's own user-space code is
# simulated: not the kernel, not the upstream. Valgrind slows the proxy about fifty times, so
# the load saturates it at every connection count; compare the two proxies, not these numbers
# with the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/../.."
extra_tools=(valgrind:valgrind)
. testbed/bench/prepare.sh

conns_list=("$@")
[ ${#conns_list[@]} -eq 0 ] && conns_list=(64 256)
upstream=127.0.0.1:18401 listen=127.0.0.1:18410 admin=127.0.0.1:18411
tmp=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

tool=${FOOTPRINT_TOOL:-wrk}
protocols=""
[ "$tool" = h2load ] && protocols='  protocols       = ["http1", "h2c"]'
cat >"$tmp/empty.hcl" <<EOF
server {
  listen          = "$listen"
  max_connections = 20000
$protocols
}
admin {
  listen = "$admin"
}
upstream "up" {
  target {
    address = "$upstream"
  }
}
pipeline "bench" {
  match {
    path_prefix = "/"
  }
  balancer {
    upstream = upstream.up
  }
}
EOF

listening() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
# A Wasm filter's module compiles under valgrind for minutes: give a proxy up to 10.
wait_listening() {
  for _ in $(seq 1 "${2:-300}"); do listening "$1" && return 0; sleep 0.1; done
  echo "nothing listens on $1" >&2
  return 1
}

taskset -c 1 bin/benchupstream -listen "$upstream" >"$tmp/upstream.log" 2>&1 &
pids+=($!)
wait_listening "$upstream"

cases=(floor sluice)
[ "$tool" = h2load ] && cases=(sluice)
[ -n "${FOOTPRINT_CASES:-}" ] && read -r -a cases <<<"$FOOTPRINT_CASES"
wrk_args=()
while IFS= read -r h; do
  [ -n "$h" ] && wrk_args+=(-H "$h")
done <<<"${FOOTPRINT_HEADER:-}"
seconds=${FOOTPRINT_SECONDS:-8}
h2_args=()
for h in ${wrk_args[@]+"${wrk_args[@]}"}; do
  [ "$h" != -H ] && h2_args+=(-H "$h")
done
# load CONNS SECONDS REQUESTS OUT: the load generator for FOOTPRINT_TOOL (wrk for SECONDS, h2load
# for REQUESTS); OUT gets the count of answers.
load() {
  if [ "$tool" = h2load ]; then
    taskset -c 0 h2load -t1 -c"$1" -m10 -n "$3" ${h2_args[@]+"${h2_args[@]}"} "${FOOTPRINT_SCHEME:-http}://$listen/" >"$tmp/load.txt"
    awk '/^requests:/{print $8}' "$tmp/load.txt" >"$4"
    [ "$4" = /dev/null ] || grep -q "status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx" "$tmp/load.txt" ||
      echo "$proxy: $(grep "status codes" "$tmp/load.txt") (its counts are of those answers)" >&2
  else
    taskset -c 0 wrk -t1 -c"$1" -d"$2s" --timeout 30s ${wrk_args[@]+"${wrk_args[@]}"} "${FOOTPRINT_SCHEME:-http}://$listen/" >"$tmp/load.txt"
    awk '/requests in/{print $1}' "$tmp/load.txt" >"$4"
    if [ "$4" != /dev/null ] && grep -q "Non-2xx" "$tmp/load.txt"; then
      echo "$proxy: $(grep Non-2xx "$tmp/load.txt" | tr -s ' ') (its counts are of those answers)" >&2
    fi
  fi
}

echo "| proxy | connections | requests | instructions | L1i misses | L1d misses | LL misses |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for conns in "${conns_list[@]}"; do
  for proxy in "${cases[@]}"; do
    case $proxy in
      floor) cmd=(bin/floorproxy -listen "$listen" -upstream "$upstream") ;;
      sluice) cmd=(bin/sluice run -c "$tmp/empty.hcl") ;;
      *=*:*) spec=${proxy#*=}; proxy=${proxy%%=*}; cmd=("${spec%%:*}" run -c "${spec#*:}") ;;
      *) echo "FOOTPRINT_CASES entry $proxy is not LABEL=BINARY:CONFIG" >&2; exit 2 ;;
    esac
    out="$tmp/$proxy-$conns.cg"
    # Asynchronous preemption signals and valgrind do not mix; the request path does not need them.
    # Setting schedtrace as sluice run would (cmd/sluice/sysmon.go) keeps it from re-executing
    # itself out of valgrind, and gives the floor the same runtime setting.
    GODEBUG=asyncpreemptoff=1,schedtrace=2147483647 taskset -c 1 valgrind --tool=callgrind --cache-sim=yes \
      --I1=32768,8,64 --D1=32768,8,64 --LL=1048576,16,64 --callgrind-out-file="$out" \
      "${cmd[@]}" >"$tmp/$proxy.log" 2>&1 &
    vg=$!
    pids+=($vg)
    wait_listening "$listen" 6000
    # Warm up (connections, pools, the upstream connections), then count 8 s of load only.
    load "$conns" 3 5000 /dev/null
    callgrind_control -z "$vg" >/dev/null 2>&1
    load "$conns" "$seconds" "${FOOTPRINT_REQUESTS:-10000}" "$tmp/reqs"
    callgrind_control -d "$vg" >/dev/null 2>&1
    reqs=$(cat "$tmp/reqs")
    kill "$vg"; wait "$vg" 2>/dev/null || true
    # The dump after the zeroing is the file with the highest part number.
    dump=$(ls -v "$out".* | tail -1)
    [ -n "${FOOTPRINT_KEEP:-}" ] && cp "$dump" "$FOOTPRINT_KEEP/$proxy-$conns.cg"
    callgrind_annotate "$dump" 2>/dev/null | awk -v p="$proxy" -v c="$conns" -v n="$reqs" '
      /^Events shown:/ { for (i = 3; i <= NF; i++) ev[$i] = i - 2 }
      /PROGRAM TOTALS/ {
        j = 0
        for (i = 1; i <= NF; i++) if ($i ~ /^[0-9,]+$/) { j++; v = $i; gsub(",", "", v); t[j] = v }
        printf "| %s | %d | %d | %.0f | %.0f | %.0f | %.0f |\n", p, c, n, t[ev["Ir"]] / n,
          t[ev["I1mr"]] / n, (t[ev["D1mr"]] + t[ev["D1mw"]]) / n, (t[ev["DLmr"]] + t[ev["DLmw"]]) / n
      }'
  done
done
