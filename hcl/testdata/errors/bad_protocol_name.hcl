server {
  protocols                 = ["http1", "http2"] # ERROR: Invalid value
  h2_max_concurrent_streams = 0                  # ERROR: Invalid value
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
