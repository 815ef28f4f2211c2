package balancer

import (
	"net"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// TestResponseFlagsAndFailureReasons checks the response flags and failure reasons the
// balancer records for each way an upstream exchange ends.
func TestResponseFlagsAndFailureReasons(t *testing.T) {
	// A port nobody listens on: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	failing := serveUpstream(t, func(c *fasthttp.RequestCtx) { c.SetStatusCode(503) })
	slow := serveUpstream(t, func(c *fasthttp.RequestCtx) { time.Sleep(300 * time.Millisecond) })
	// A server that reads the request and closes the connection without an answer.
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	go func() {
		for {
			nc, err := rl.Accept()
			if err != nil {
				return
			}
			_, _ = nc.Read(make([]byte, 4096))
			nc.Close()
		}
	}()
	reset := rl.Addr().String()

	tests := []struct {
		name     string
		target   string
		timeout  time.Duration
		status   int
		flags    engine.RespFlags
		upstream bool
		reason   string
	}{
		{"connect refused", refused, 0, 502, engine.FlagUpstreamConnFail, false, "connect_refused"},
		{"upstream 5xx", failing, 0, 503, engine.FlagUpstream5xx, true, "5xx"},
		{"timeout", slow, 50 * time.Millisecond, 504, engine.FlagUpstreamTimeout, false, "timeout"},
		{"reset", reset, 0, 502, engine.FlagUpstreamReset, false, "reset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig(tc.target)
			if tc.timeout > 0 {
				cfg.Timeouts = &TimeoutsConfig{Request: engine.Duration(tc.timeout)}
			}
			name := t.Name()
			u := buildFor(t, name, cfg, &engine.BuildEnv{})
			before := value(mFailures.WithLabelValues(name, tc.target, tc.reason))
			c := enginetest.NewCtx(t, "GET", "/x")
			enginetest.Serve(c, u.Serve)
			if got := c.Response.StatusCode(); got != tc.status {
				t.Fatalf("status %d, want %d", got, tc.status)
			}
			if c.Flags != tc.flags || c.FromUpstream != tc.upstream {
				t.Errorf("flags %s, from upstream %v; want %s, %v", c.Flags.AppendText(nil), c.FromUpstream, tc.flags.AppendText(nil), tc.upstream)
			}
			if d := value(mFailures.WithLabelValues(name, tc.target, tc.reason)) - before; d != 1 {
				t.Errorf("failures{reason=%q} grew by %v, want 1", tc.reason, d)
			}
		})
	}

	t.Run("tls", func(t *testing.T) {
		// A TLS target that speaks plain HTTP: the handshake fails.
		cfg := validConfig(failing)
		cfg.Targets[0].TLS = true
		name := t.Name()
		u := buildFor(t, name, cfg, &engine.BuildEnv{})
		before := value(mFailures.WithLabelValues(name, failing, "tls"))
		c := enginetest.NewCtx(t, "GET", "/x")
		enginetest.Serve(c, u.Serve)
		if c.Response.StatusCode() != 502 || c.Flags != engine.FlagUpstreamTLS {
			t.Errorf("status %d flags %s, want 502 UTLS", c.Response.StatusCode(), c.Flags.AppendText(nil))
		}
		if d := value(mFailures.WithLabelValues(name, failing, "tls")) - before; d != 1 {
			t.Errorf("failures{reason=\"tls\"} grew by %v, want 1", d)
		}
	})

	t.Run("no healthy target", func(t *testing.T) {
		u := buildFor(t, t.Name(), validConfig(failing), &engine.BuildEnv{})
		for _, tg := range u.set.Load().targets {
			tg.st.healthy.Store(false)
		}
		c := enginetest.NewCtx(t, "GET", "/x")
		enginetest.Serve(c, u.Serve)
		if c.Response.StatusCode() != 503 || c.Flags != engine.FlagNoHealthyUpstream {
			t.Errorf("status %d flags %s, want 503 UH", c.Response.StatusCode(), c.Flags.AppendText(nil))
		}
	})
}
