server {
  forward_client_cert = "forward" # ERROR: Invalid value
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
