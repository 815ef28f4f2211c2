listener "web" {
  address           = "127.0.0.1:8081"
  redirect_to_https = true # ERROR: Invalid listener "web"
}

listener "public" {
  address = "127.0.0.1:8443"
  tls {
    certificate {
      cert_file = "missing.pem" # ERROR: Invalid listener "public"
      key_file  = "missing-key.pem"
    }
  }
}

listener "other" {
  address = "127.0.0.1:8444"
  tls {
    cert_file = "missing.pem" # ERROR: Invalid listener "other"
    key_file  = "missing-key.pem"
  }
}

upstream "u" {
  target {
    address = "127.0.0.1:9000"
  }
}

pipeline "p" {
  balancer {
    upstream = upstream.u
  }
}
