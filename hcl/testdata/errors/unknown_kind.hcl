upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  filter "jtw" { # ERROR: Unknown filter kind "jtw"
  }
  balancer { upstream = upstream.u }
}
