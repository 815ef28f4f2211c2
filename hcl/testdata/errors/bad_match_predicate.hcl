upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  match {
    header "x-canary" {
      regex = "[a-" # ERROR: Invalid value
    }
    header "x-two" { # ERROR: Invalid value
      exact  = "1"
      prefix = "1"
    }
    cookie "ab" {
      exakt = "b" # ERROR: Unsupported argument
    }
  }
  balancer { upstream = upstream.u }
}
pipeline "r" {
  match { path_prefix = "/r/" }
  route {
    max_hops = 0 # ERROR: Invalid value
  }
  balancer { upstream = upstream.u } # ERROR: Duplicate balancer block
}
pipeline "re" {
  match {
    path_regex = "^/api/(" # ERROR: Invalid value
  }
  balancer { upstream = upstream.u }
}
