upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  forward_client_cert = "always" # ERROR: Invalid value
  balancer { upstream = upstream.u }
}
