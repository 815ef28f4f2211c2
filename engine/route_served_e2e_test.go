package engine_test

import (
	"net"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// TestRoutedFailureLogNamesServingPipeline: a 502 from a pipeline a route handed the request to
// is logged under that pipeline, with the one the request entered by as entry_pipeline.
func TestRoutedFailureLogNamesServingPipeline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there: connecting fails
	gw := gatewaytest.Start(t, `
upstream "gone" {
  target { address = "`+dead+`" }
  timeouts { connect = "200ms" }
}
pipeline "front" {
  match { path_prefix = "/" }
  filter "headers" {
    request_set = { "X-Hop" = "1" }
  }
  route {}
}
pipeline "back" {
  match {
    path_prefix = "/"
    routed_only = true
    header "x-hop" { exact = "1" }
  }
  balancer { upstream = upstream.gone }
}
`)
	if status, _, _ := getWith(t, gw.URL+"/x"); status != 502 {
		t.Fatalf("status %d, want 502", status)
	}
	logs := gw.Logs()
	if !strings.Contains(logs, "pipeline=back") || !strings.Contains(logs, "entry_pipeline=front") || !strings.Contains(logs, "upstream=gone") {
		t.Errorf("the failure log line should name pipeline=back, entry_pipeline=front, upstream=gone:\n%s", logs)
	}
}
