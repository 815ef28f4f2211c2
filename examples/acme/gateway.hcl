# Automatic certificates against a local ACME CA: Let's Encrypt's test server, Pebble, which
# examples/acme/run.sh starts with a DNS server that resolves every name to 127.0.0.1. For Let's
# Encrypt itself, drop ca_url and ca_root_file, and listen on ports 80 and 443.
listener "http" {
  address           = "127.0.0.1:5002" # Pebble validates HTTP-01 here (a real CA: port 80)
  redirect_to_https = true             # every request but an ACME challenge gets 308 to https://
}
listener "https" {
  address = "127.0.0.1:5001" # and TLS-ALPN-01 here (a real CA: port 443; validate warns about it)
  tls {
    acme {
      email        = "demo@sluice.test"
      ca_url       = "https://127.0.0.1:14000/dir"
      ca_root_file = env("PEBBLE_MINICA") # the CA of Pebble's own HTTPS certificate
      storage_dir  = env("ACME_STORAGE", "state/acme")
    }
  }
}
upstream "demo" {
  target { address = "127.0.0.1:9001" }
}
pipeline "site" {
  match { hosts = ["sluice.test"] } # the certificate's name
  balancer { upstream = upstream.demo }
}
