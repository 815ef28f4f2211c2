telemetry {
  service_name       = "edge"
  headers            = { "x-api-key" = "k", "dd-api-key" = "d" }
  queue_size         = 4096
  batch_size         = 256
  batch_timeout      = "500ms"
  export_timeout     = "5s"
  export_concurrency = 2
  report_interval    = "30s"
  traces {
    exporter      = "otlp"
    sample_ratio  = 0.1
    filter_spans  = false
    server_timing = true
  }
}
upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  trace_sample_ratio = 1
  balancer { upstream = upstream.u }
}
