package telemetry_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/filters/ratelimit/redistest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/otlpreceiver"
)

// guestWAT is a Wasm filter (http-wasm ABI) that logs one line per request at warn level and
// lets the request through: its log line must appear as an event on its span.
const guestWAT = `(module
  (import "http_handler" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello from the guest")
  (func (export "handle_request") (result i64)
    (call $log (i32.const 1) (i32.const 0) (i32.const 20))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
`

func buildGuest(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	src := filepath.Join(dir, "hello.wat")
	if err := os.WriteFile(src, []byte(guestWAT), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello.wasm")
	if b, err := exec.Command("wat2wasm", src, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v: %s", err, b)
	}
	return out
}

const hmacSecret = "0123456789abcdef0123456789abcdef"

// hs256 mints a token for sub, valid for an hour.
func hs256(sub string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, time.Now().Add(time.Hour).Unix())))
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write([]byte(head + "." + body))
	return head + "." + body + "." + enc.EncodeToString(m.Sum(nil))
}

// TestFullPipelineTrace is the acceptance test: one request with a client traceparent
// through jwt + rate_limit (real Redis) + wasm (a real guest) + the balancer, whose first target
// fails so the request is retried. The exported tree must be server → filter spans (the guest's
// log as an event) and two sibling client spans, with the HTTP attributes, and the upstream must
// receive the client's trace id with the gateway's last client span as parent.
func TestFullPipelineTrace(t *testing.T) {
	rcv := startReceiver(t)
	redis := redistest.Start(t)
	dir := t.TempDir()
	guest := buildGuest(t, dir)
	bad, good := &recorder{}, &recorder{}
	upBad := gatewaytest.Upstream(t, bad.handler(503))
	upGood := gatewaytest.Upstream(t, good.handler(200))
	gw := startWithTelemetry(t, fmt.Sprintf(`
telemetry {
  service_name = "sluice"
  traces {
    exporter        = "otlp"
    endpoint        = %q
    sample_ratio    = 0.01
    response_header = "X-Trace-Id"
  }
}
redis "main" {
  address = %q
}
upstream "catalog" {
  policy = "round_robin"
  target {
    address = %q
  }
  target {
    address = %q
  }
  retry {
    attempts       = 1
    on             = ["503"]
    budget_percent = 100
  }
}
pipeline "api" {
  match {
    path_prefix = "/v1/"
  }
  filter "jwt" {
    hmac_secret = %q
  }
  filter "rate_limit" {
    key    = "claim:sub"
    limit  = 1000
    period = "1m"
    store  = redis.main
  }
  filter "wasm" {
    name   = "hello"
    module = %q
  }
  balancer {
    upstream = upstream.catalog
  }
}
`, rcv.Endpoint, redis.Addr, upBad, upGood, hmacSecret, guest))

	token := hs256("alice")
	const clientSpan = "00f067aa0ba902b7"
	var traceID string
	for i := 0; i < 4 && traceID == ""; i++ {
		// A sampled client traceparent: parent-based sampling records it despite the 1% ratio.
		tid := fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e47%02d", i)
		resp := do(t, gw.URL+"/v1/items", "Authorization", "Bearer "+token, "traceparent", "00-"+tid+"-"+clientSpan+"-01")
		if resp.StatusCode() != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
		}
		if bad.count() > 0 {
			traceID = tid
		}
	}
	if traceID == "" {
		t.Fatal("round robin never tried the failing target first")
	}
	gw.Tel.Flush(context.Background())
	spans, err := rcv.WaitSpans(5*time.Second, func(s []otlpreceiver.Span) bool {
		return len(byKind(otlpreceiver.Trace(s, traceID), "Server")) == 1
	})
	if err != nil {
		t.Fatal(err)
	}
	spans = otlpreceiver.Trace(spans, traceID)
	t.Logf("\n%s", otlpreceiver.FormatTree(spans))

	srv := byKind(spans, "Server")[0]
	if srv.ParentSpanID != clientSpan || srv.Name != "GET /v1/*" {
		t.Errorf("server span %q, parent %q", srv.Name, srv.ParentSpanID)
	}
	for k, want := range map[string]any{
		"http.request.method": "GET", "url.path": "/v1/items", "url.scheme": "http", "http.route": "/v1/*", "sluice.pipeline": "api",
		"http.response.status_code": int64(200), "server.address": "127.0.0.1", "network.peer.address": "127.0.0.1",
		"user_agent.original": "telemetry-test/1.0",
	} {
		if got := srv.Attributes[k]; got != want {
			t.Errorf("server span %s = %#v, want %#v", k, got, want)
		}
	}
	// Filter spans in pipeline order, then the attempts, then the response phases in reverse:
	// jwt has none (engine.RequestOnly), so it has one span.
	var order []string
	for _, s := range spans {
		if s.SpanID == srv.SpanID {
			continue
		}
		if s.ParentSpanID != srv.SpanID {
			t.Errorf("span %q is not a child of the server span", s.Name)
		}
		order = append(order, s.Name)
	}
	want := []string{"jwt request", "rate_limit request", "wasm:hello request", "GET", "GET", "wasm:hello response", "rate_limit response"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("children in start order:\n got %v\nwant %v", order, want)
	}
	for _, s := range spans {
		if s.Name == "wasm:hello request" {
			if len(s.Events) != 1 || s.Events[0].Name != "wasm.log" || s.Events[0].Attributes["log.message"] != "hello from the guest" {
				t.Errorf("guest log event: %+v", s.Events)
			}
			if s.Attributes["sluice.filter.name"] != "hello" || s.Attributes["sluice.verdict"] != "continue" {
				t.Errorf("wasm span attributes %v", s.Attributes)
			}
		}
		// What each filter decided, on its span.
		switch s.Name {
		case "wasm:hello request", "wasm:hello response":
			if us, ok := s.Attributes["sluice.wasm.guest_us"].(int64); !ok || us < 0 {
				t.Errorf("%s: sluice.wasm.guest_us = %v", s.Name, s.Attributes["sluice.wasm.guest_us"])
			}
		case "rate_limit request":
			if s.Attributes["sluice.rate_limit.result"] != "allowed" || s.Attributes["sluice.rate_limit.policy"] == nil {
				t.Errorf("rate_limit span attributes %v", s.Attributes)
			}
			if r, ok := s.Attributes["sluice.rate_limit.remaining"].(int64); !ok || r < 0 || r >= 1000 {
				t.Errorf("sluice.rate_limit.remaining = %v, want 0..999", s.Attributes["sluice.rate_limit.remaining"])
			}
		case "jwt request":
			if o := s.Attributes["sluice.jwt.outcome"]; o != "valid" && o != "valid_cached" {
				t.Errorf("sluice.jwt.outcome = %v", o)
			}
		}
	}
	clients := byKind(spans, "Client")
	if len(clients) != 2 {
		t.Fatalf("%d client spans, want 2", len(clients))
	}
	if clients[0].Attributes["http.response.status_code"] != int64(503) || clients[1].Attributes["http.response.status_code"] != int64(200) ||
		clients[1].Attributes["http.request.resend_count"] != int64(1) {
		t.Errorf("attempts: %v / %v", clients[0].Attributes, clients[1].Attributes)
	}
	tp, _ := good.last()
	if want := "00-" + traceID + "-" + clients[1].SpanID + "-01"; tp != want {
		t.Errorf("upstream traceparent %q, want %q", tp, want)
	}
}
