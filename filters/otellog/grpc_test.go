package otellog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestGRPCStatusRecorded: a gRPC call's record has grpc_status — the status the server maps a
// local reply to (a 429 is RESOURCE_EXHAUSTED), or the upstream's own — and other requests none.
func TestGRPCStatusRecorded(t *testing.T) {
	for _, tc := range []struct {
		name, ct string
		term     func(*engine.Ctx)
		filters  []engine.Filter
		want     any // nil: no grpc_status field
	}{
		{"local reply", "application/grpc", upstream, []engine.Filter{denyFilter{}}, float64(8)},
		{"upstream status", "application/grpc+proto", func(c *engine.Ctx) {
			c.Response.Header.SetContentType("application/grpc")
			c.Response.Header.Set("grpc-status", "5")
		}, nil, float64(5)},
		{"not gRPC", "application/json", upstream, []engine.Filter{denyFilter{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, buf := newBufFilter(t, defaults())
			c := enginetest.NewCtx(t, "POST", "/shop.Cart/Get", "Content-Type", tc.ct)
			enginetest.Serve(c, tc.term, append([]engine.Filter{f}, tc.filters...)...)
			f.Close()
			var rec map[string]any
			if err := json.Unmarshal(buf.b.Bytes(), &rec); err != nil {
				t.Fatalf("%v: %s", err, buf.b.String())
			}
			if got := rec["grpc_status"]; got != tc.want {
				t.Errorf("grpc_status = %v, want %v (%s)", got, tc.want, buf.b.String())
			}
		})
	}
	cfg := defaults()
	cfg.Format = "text"
	f, buf := newBufFilter(t, cfg)
	c := enginetest.NewCtx(t, "POST", "/shop.Cart/Get", "Content-Type", "application/grpc")
	enginetest.Serve(c, upstream, f, denyFilter{})
	f.Close()
	if !strings.Contains(buf.b.String(), " status=429 grpc_status=8 bytes=") {
		t.Errorf("text record: %s", buf.b.String())
	}
}
