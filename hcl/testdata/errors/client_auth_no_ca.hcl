server {
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
    client_auth { # ERROR: Invalid value
      mode = "require"
    }
  }
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
