#!/usr/bin/env bash
# Makes a throwaway test CA and the certificates examples/tls/gateway.hcl serves, in
# examples/tls/certs/ (ignored by git; nothing here is a real secret). Needs openssl.
#   localhost.pem      localhost, 127.0.0.1 (the default certificate)
#   api.pem            api.localhost
#   apps.pem           *.apps.localhost (a wildcard)
#   client.pem         a client certificate (CN=demo-client, spiffe://example.local/demo) for
#                      api.localhost's mutual TLS
#   tickets.key        48 random bytes for session_ticket_key_file
# Run it again to "renew": the gateway serves the new files within 2 s, without a restart.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs
cd certs
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=Sluice example test CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
fi
issue() { # name, common name, subjectAltName[, extendedKeyUsage]
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$1-key.pem.tmp" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 7 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "${4:-serverAuth}") -out "$1.pem.tmp" 2>/dev/null
  rm -f "$1.csr"
  chmod 600 "$1-key.pem.tmp"
  # Key first, then certificate, each renamed into place: the gateway never reads half a file,
  # and a certificate whose key is not there yet is retried at the next look.
  mv "$1-key.pem.tmp" "$1-key.pem"
  mv "$1.pem.tmp" "$1.pem"
}
issue localhost localhost "DNS:localhost,IP:127.0.0.1"
issue api api.localhost "DNS:api.localhost"
issue apps "*.apps.localhost" "DNS:*.apps.localhost"
issue client demo-client "URI:spiffe://example.local/demo" clientAuth
[ -f tickets.key ] || { openssl rand -base64 48 > tickets.key; chmod 600 tickets.key; }
echo "certificates in $(pwd); trust ca.pem to verify them (curl --cacert $(pwd)/ca.pem)"
