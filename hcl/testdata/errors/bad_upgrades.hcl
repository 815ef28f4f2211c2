server {
  untrusted_headers = ["X Real IP"] # ERROR: Invalid value
  max_uri_bytes     = "100"         # ERROR: Invalid value
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  upgrades = ["websocket/13"] # ERROR: Invalid upgrades
  balancer { upstream = upstream.u }
}
pipeline "q" {
  match { path_prefix = "/q/" }
  upgrades = "websocket" # ERROR: Invalid upgrades
  balancer { upstream = upstream.u }
}
