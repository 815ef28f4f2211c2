server {
  listen = "127.0.0.1:443"
  tls {
    acme { # ERROR: No domain for ACME
      email = "ops@example.com"
    }
  }
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  match { hosts = ["*.example.com", "192.0.2.1"] }
  balancer { upstream = upstream.u }
}
