package wasm_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestReadStreamedRequestBody: a guest that reads the request body gets all of a streamed one
// (larger than what comes with the head, or chunked), read in by the host up to max_body_bytes;
// a body over it answers 413, not the guest's reply on a cut body.
func TestReadStreamedRequestBody(t *testing.T) {
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("upstream") })
	gw := gatewaytest.Start(t, fmt.Sprintf(`
server {
  max_body_bytes = "512KiB"
}
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "wasm" {
    module = %q
  }
  balancer { upstream = upstream.u }
}
`, up, wasm.Guest(t, "echo_body")))
	body := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	for _, tt := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"length", len(body), false, 200},
		{"chunked", len(body), true, 200},
		{"chunked over max_body_bytes", 2*len(body) + 1, true, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := io.Reader(bytes.NewReader(body))
			if tt.size > len(body) {
				src = io.MultiReader(bytes.NewReader(body), bytes.NewReader(body), bytes.NewReader([]byte("x")))
			}
			req, _ := http.NewRequest("POST", gw.URL+"/", src)
			req.ContentLength = int64(tt.size)
			if tt.chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(src) // no length known to the client: chunked
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 && !bytes.Equal(got, body) {
				t.Errorf("the guest echoed %d bytes, want the %d of the body", len(got), len(body))
			}
		})
	}
}
