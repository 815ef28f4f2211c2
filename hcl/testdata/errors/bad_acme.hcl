server {
  listen = "127.0.0.1:8443"
  tls {
    acme {
      email      = "not an address"            # ERROR: Invalid value
      ca_url     = "http://acme.example/dir"   # ERROR: Invalid value
      challenges = ["dns-01", "tls-alpn-01"]   # ERROR: Invalid value
      storage    = "s3"                        # ERROR: Invalid value
      domains    = ["*.example.com", "a.b.c"]  # ERROR: Invalid value
    }
  }
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
