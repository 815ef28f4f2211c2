package gatewaytest

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// A test that ends right after starting an upstream (a missing tool, a failed build) must not
// wait for it forever: its cleanup can run before the server's goroutine has taken the listener.
func TestUpstreamStopsWhenTestEndsAtOnce(t *testing.T) {
	for range 200 {
		t.Run("", func(t *testing.T) {
			Upstream(t, func(*fasthttp.RequestCtx) {})
		})
	}
}
