server {
  listen = "127.0.0.1:8080" # ERROR: server.listen with listener blocks
  tls { # ERROR: server.tls with listener blocks
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }
}

listener "web" {
  address = "127.0.0.1:8081"
}

upstream "u" {
  target {
    address = "127.0.0.1:9000"
  }
}

pipeline "p" {
  match {
    listeners = ["wbe"] # ERROR: Unknown listener
  }
  balancer {
    upstream = upstream.u
  }
}
