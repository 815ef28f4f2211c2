#!/usr/bin/env bash
# Serves examples/tls: makes the test certificates (if missing), builds sluice and the testbed,
# starts a demo upstream on 127.0.0.1:9001 and the gateway; Ctrl-C stops both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
[ -f "$here/certs/localhost.pem" ] || "$here/make-certs.sh"
bin="$(mktemp -d)"
go build -o "$bin/sluice" ./cmd/sluice
go build -o "$bin/testbed" ./testbed/cmd/testbed
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$bin"; }
trap cleanup EXIT INT TERM
"$bin/testbed" upstream -listen 127.0.0.1:9001 -name demo >/dev/null &
pids+=($!)
ca="$here/certs/ca.pem"
cat <<TXT

Sluice TLS example: http://127.0.0.1:8080 (redirects), https://localhost:8443, internal http://127.0.0.1:8081.
In another terminal:

  curl -si http://localhost:8080/hello | head -3                                  # 308 to https://localhost:8443/hello
  curl -s --cacert $ca https://localhost:8443/hello                               # the default certificate (localhost), HTTP/2
  curl -s --cacert $ca --resolve api.localhost:8443:127.0.0.1 https://api.localhost:8443/ -o /dev/null -w '%{http_version} %{ssl_verify_result}\\n'
  curl -s --cacert $ca --resolve shop.apps.localhost:8443:127.0.0.1 https://shop.apps.localhost:8443/ -o /dev/null -w '%{http_code}\\n'   # the wildcard
  openssl s_client -connect 127.0.0.1:8443 -servername api.localhost </dev/null 2>/dev/null | grep subject=  # which certificate SNI picks
  openssl s_client -connect 127.0.0.1:8443 -tls1_1 </dev/null                      # refused: TLS 1.1
  curl -s http://127.0.0.1:8081/ops/status -o /dev/null -w '%{http_code}\\n'        # 200 on the internal listener
  curl -s --cacert $ca https://localhost:8443/ops/status -o /dev/null -w '%{http_code}\\n' # not the ops pipeline there
  $here/make-certs.sh                                                              # renew: served within 2 s, no restart

Mutual TLS on api.localhost (client_auth in its certificate block):

  curl -s --cacert $ca --resolve api.localhost:8443:127.0.0.1 https://api.localhost:8443/                  # refused: no client certificate
  curl -s --cacert $ca --cert $here/certs/client.pem --key $here/certs/client-key.pem --resolve api.localhost:8443:127.0.0.1 https://api.localhost:8443/ -o /dev/null -w '%{http_code}\\n'  # 200; the upstream gets X-Forwarded-Client-Cert
  curl -s --cacert $ca -H 'Host: api.localhost' https://localhost:8443/ -o /dev/null -w '%{http_code}\\n'     # 421: localhost's handshake asked for no certificate

TXT
"$bin/sluice" run -c "$here/gateway.hcl" &
pids+=($!)
wait "${pids[-1]}"
