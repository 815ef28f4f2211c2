package compress_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

func config(target, server, filter string) string {
	return fmt.Sprintf(`
server {
%s
}
upstream "u" {
  target {
    address = %q
  }
}
pipeline "api" {
  match {
    path_prefix = "/"
  }
  filter "compress" {
%s
  }
  balancer {
    upstream = upstream.u
  }
}
`, server, target, filter)
}

var client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 20 * time.Second}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	w := stdgzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// TestRequestDecompressionEndToEnd: with decompress_requests the upstream gets the decoded
// body; a body that decodes past max_body_bytes is refused with 413 before the upstream.
func TestRequestDecompressionEndToEnd(t *testing.T) {
	var hits atomic.Int64
	var got atomic.Value
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		got.Store(fmt.Sprintf("%s|%d|%s", ctx.Request.Header.ContentEncoding(), ctx.Request.Header.ContentLength(), ctx.Request.Body()))
		ctx.SetBodyString("ok")
	})
	gw := gatewaytest.Start(t, config(up, `max_body_bytes = "64KiB"`, `decompress_requests = true`))
	plain := []byte(strings.Repeat(`{"event":"click","at":1700000000}`, 100))
	post := func(body []byte) *http.Response {
		req, _ := http.NewRequest("POST", gw.URL+"/events", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := post(gzipped(plain)); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if want := fmt.Sprintf("|%d|%s", len(plain), plain); got.Load() != want {
		t.Errorf("upstream saw %.80q…", got.Load())
	}
	// 16MiB of zeros compress to ~16KiB: well under max_body_bytes on the wire, far over decoded.
	bomb := gzipped(make([]byte, 16<<20))
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	before := hits.Load()
	if resp := post(bomb); resp.StatusCode != 413 {
		t.Errorf("zip bomb: status %d, want 413", resp.StatusCode)
	}
	if hits.Load() != before {
		t.Error("the zip bomb reached the upstream")
	}
}

// TestStreamedResponseNotCompressed: a response over max_response_bytes is streamed to the
// client and left as it is; smaller ones are compressed.
func TestStreamedResponseNotCompressed(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128KiB
	up := gatewaytest.Upstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "text/plain")
		if string(ctx.Path()) == "/big" {
			ctx.SetBody(big)
			return
		}
		ctx.SetBody(big[:8<<10])
	})
	gw := gatewaytest.Start(t, config(up, `max_response_bytes = "64KiB"`, ``))
	for _, tc := range []struct {
		path, coding string
		size         int
	}{{"/big", "", len(big)}, {"/small", "gzip", 8 << 10}} {
		req, _ := http.NewRequest("GET", gw.URL+tc.path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != tc.coding {
			t.Errorf("%s: Content-Encoding %q, want %q", tc.path, ce, tc.coding)
		}
		if tc.coding == "gzip" {
			zr, err := stdgzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if len(body) != tc.size {
			t.Errorf("%s: %d bytes, want %d", tc.path, len(body), tc.size)
		}
	}
}
