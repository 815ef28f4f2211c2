server {
  trusted_proxies = ["10.0.0.0/33"] # ERROR: Invalid value
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
