#!/usr/bin/env bash
# Automatic certificates end to end on this machine: Let's Encrypt's test CA (Pebble, validation
# on), a DNS server resolving every name to 127.0.0.1 for it, a demo upstream, and `sluice run`
# with examples/acme/gateway.hcl. It waits until https://sluice.test:5001/ answers with the
# certificate Sluice got, shows it, and keeps serving until Ctrl-C (with --check it exits then).
# Needs Go, the Go module proxy, curl, openssl, and the ports 5001 5002 8053 9001 9901 14000 15000.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
check=false
[ "${1:-}" = "--check" ] && check=true

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building pebble v2.10.3, sluice and testbed…"
# Outside this module, so its go.mod stays as it is.
(cd "$work" && GOBIN="$work" go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3)
moddir=$(cd "$work" && go mod download -json github.com/letsencrypt/pebble/v2@v2.10.3 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
go build -o "$work/sluice" ./cmd/sluice
go build -o "$work/testbed" ./testbed/cmd/testbed

cat >"$work/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$moddir/test/certs/localhost/cert.pem", "privateKey": "$moddir/test/certs/localhost/key.pem",
  "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "keyAlgorithm": "ecdsa",
  "profiles": {"default": {"description": "demo", "validityPeriod": 86400}}
}}
JSON

"$work/testbed" dns -listen 127.0.0.1:8053 >"$work/dns.log" 2>&1 &
pids+=($!)
"$work/testbed" upstream -listen 127.0.0.1:9001 -name demo >"$work/upstream.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 "$work/pebble" -config "$work/pebble.json" -dnsserver 127.0.0.1:8053 >"$work/pebble.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sfk https://127.0.0.1:14000/dir >/dev/null && break
  sleep 0.1
done

PEBBLE_MINICA="$moddir/test/certs/pebble.minica.pem" ACME_STORAGE="$work/acme" \
  "$work/sluice" run -c examples/acme/gateway.hcl &
pids+=($!)

# Pebble makes a new root each run: trust that one, as a browser would trust Let's Encrypt's.
curl -sfk https://127.0.0.1:15000/roots/0 >"$work/root.pem"
for i in $(seq 300); do
  if curl -sf --cacert "$work/root.pem" --resolve sluice.test:5001:127.0.0.1 https://sluice.test:5001/ >"$work/answer" 2>/dev/null; then
    echo
    echo "https://sluice.test:5001/ answered with the certificate Sluice got from Pebble:"
    openssl s_client -connect 127.0.0.1:5001 -servername sluice.test </dev/null 2>/dev/null |
      openssl x509 -noout -ext subjectAltName -issuer -enddate
    $check && exit 0
    echo "Serving; Ctrl-C stops. Try: curl --cacert $work/root.pem --resolve sluice.test:5001:127.0.0.1 https://sluice.test:5001/"
    wait
    exit 0
  fi
  sleep 0.1
done
echo "no certificate within 30s; pebble's log:" >&2
cat "$work/pebble.log" >&2
exit 1
