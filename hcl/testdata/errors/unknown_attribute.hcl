server {
  listn = "127.0.0.1:8080" # ERROR: Unsupported argument
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
