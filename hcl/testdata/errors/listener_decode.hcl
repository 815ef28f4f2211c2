listener "public" {
  address = "127.0.0.1:8443"
  tls {
    cert_file   = "cert.pem"
    key_file    = "key.pem"
    min_version = "1.0" # ERROR: Invalid value
    ciphers     = ["TLS_RSA_WITH_RC4_128_SHA", "TLS_AES_128_GCM_SHA256"] # ERROR: Invalid value
    curves      = ["X448"] # ERROR: Invalid value
  }
}

listener "plain" {
  address   = "127.0.0.1:8082"
  protocols = ["h2"] # ERROR: Invalid value
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
