server {
  idle_timeout = "forever" # ERROR: Invalid value
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "a" {
  filter "header" { # ERROR: Unknown filter kind "header"
  }
  balancer { upstream = upstream.v } # ERROR: Reference to undeclared upstream
}
