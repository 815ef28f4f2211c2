admin {
  token = env("SLUICE_TEST_SURELY_UNSET_VARIABLE") # ERROR: Error in function call
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
