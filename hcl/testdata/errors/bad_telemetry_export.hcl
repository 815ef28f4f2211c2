telemetry {
  queue_size         = 0             # ERROR: Invalid value
  batch_size         = 10            # ERROR: Invalid value
  export_timeout     = "0s"          # ERROR: Invalid value
  export_concurrency = 100           # ERROR: Invalid value
  report_interval    = "10ms"        # ERROR: Invalid value
  headers            = { "bad name" = "x" } # ERROR: Invalid value
}
upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  trace_sample_ratio = 1.5 # ERROR: Invalid value
  balancer { upstream = upstream.u }
}
