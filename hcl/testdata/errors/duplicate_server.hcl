server {
  listen = "127.0.0.1:8080"
}
server { # ERROR: Duplicate server block
  listen = "127.0.0.1:8081"
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
