# Pipelines whose last filter answers every request need no balancer, nor any upstream.
pipeline "health" {
  match {
    path_prefix = "/healthz"
  }
  filter "respond" {
    body = "ok\n"
  }
}
pipeline "to-https" {
  filter "headers" {
    response_set = { "X-Why" = "plain http" }
  }
  filter "redirect" {
    https = true
  }
}
