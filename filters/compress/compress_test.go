package compress

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/valyala/fasthttp"
)

// jsonBody returns about n bytes of realistic JSON (an API listing).
func jsonBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"sku":"SKU-%06d","name":"Item number %d","price":%d.%02d,"tags":["catalog","v%d"],"in_stock":%t}`,
			i, i*7919%1000000, i, i%500, i%100, i%4, i%3 == 0)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func newFilter(t testing.TB, mod func(*Config)) *Filter {
	t.Helper()
	var cfg Config
	cfg.SetDefaults()
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := New(&cfg, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// upstream returns a terminal writing status, body and header pairs.
func upstream(status int, body []byte, headers ...string) func(c *engine.Ctx) {
	return func(c *engine.Ctx) {
		// As engine.Server configures it: no made-up Content-Type.
		c.Response.Header.SetNoDefaultContentType(true)
		c.Response.SetStatusCode(status)
		for i := 0; i+1 < len(headers); i += 2 {
			c.Response.Header.Add(headers[i], headers[i+1])
		}
		c.Response.SetBody(body)
	}
}

func decodeBody(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case Gzip:
		// The standard library's reader, so the check does not trust the encoder's library.
		zr, err := stdgzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	body := jsonBody(16 << 10)
	for _, alg := range []string{Zstd, Brotli, Gzip} {
		r := levelRange[alg]
		for _, level := range []int{r.min, r.def, r.max} {
			t.Run(fmt.Sprintf("%s-%d", alg, level), func(t *testing.T) {
				f := newFilter(t, func(c *Config) { c.Level = map[string]int{alg: level} })
				c := enginetest.NewCtx(t, "GET", "/items", "Accept-Encoding", alg)
				enginetest.Serve(c, upstream(200, body, "Content-Type", "application/json; charset=utf-8",
					"ETag", `"v1"`, "Accept-Ranges", "bytes", "Vary", "Origin"), f)
				h := &c.Response.Header
				if got := string(h.ContentEncoding()); got != alg {
					t.Fatalf("Content-Encoding = %q, want %q", got, alg)
				}
				sent := c.Response.Body()
				if len(sent) >= len(body)/2 {
					t.Errorf("compressed to %d of %d bytes: too little", len(sent), len(body))
				}
				if got := decodeBody(t, alg, sent); !bytes.Equal(got, body) {
					t.Fatalf("decoded body differs (%d bytes, want %d)", len(got), len(body))
				}
				if got := string(h.Peek("ETag")); got != `W/"v1"` {
					t.Errorf("ETag = %q, want weak", got)
				}
				if v := h.Peek("Accept-Ranges"); len(v) != 0 {
					t.Errorf("Accept-Ranges = %q, want removed", v)
				}
				if got := varyValues(h); got != "Origin|Accept-Encoding" && got != "Accept-Encoding|Origin" {
					t.Errorf("Vary = %q", got)
				}
				// Content-Length is what fasthttp writes: it must match the encoded body.
				var wire bytes.Buffer
				if _, err := c.Response.WriteTo(&wire); err != nil {
					t.Fatal(err)
				}
				var parsed fasthttp.Response
				if err := parsed.Read(bufioReader(&wire)); err != nil {
					t.Fatal(err)
				}
				if parsed.Header.ContentLength() != len(sent) || !bytes.Equal(parsed.Body(), sent) {
					t.Errorf("Content-Length %d on the wire, body %d", parsed.Header.ContentLength(), len(sent))
				}
			})
		}
	}
}

func varyValues(h *fasthttp.ResponseHeader) string {
	var vs []string
	for _, v := range h.PeekAll("Vary") {
		vs = append(vs, string(v))
	}
	return strings.Join(vs, "|")
}

func TestSkips(t *testing.T) {
	big := jsonBody(4 << 10)
	tests := []struct {
		name     string
		method   string
		reqHdr   []string
		status   int
		body     []byte
		respHdr  []string
		wantVary bool
	}{
		{"already encoded", "GET", nil, 200, big, []string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, false},
		{"no-transform", "GET", nil, 200, big, []string{"Content-Type", "application/json", "Cache-Control", "public, no-transform"}, false},
		{"204", "GET", nil, 204, nil, []string{"Content-Type", "application/json"}, false},
		{"304", "GET", nil, 304, nil, []string{"Content-Type", "application/json"}, false},
		{"206 range", "GET", []string{"Range", "bytes=0-99"}, 206, big, []string{"Content-Type", "application/json", "Content-Range", "bytes 0-99/5000"}, false},
		{"Content-Range on 200", "GET", nil, 200, big, []string{"Content-Type", "application/json", "Content-Range", "bytes 0-4095/4096"}, false},
		{"HEAD", "HEAD", nil, 200, nil, []string{"Content-Type", "application/json"}, true},
		{"small body", "GET", nil, 200, big[:1000], []string{"Content-Type", "application/json"}, true},
		{"type not listed", "GET", nil, 200, big, []string{"Content-Type", "image/png"}, false},
		{"no content type", "GET", nil, 200, big, nil, false},
		{"event stream", "GET", nil, 200, big, []string{"Content-Type", "text/event-stream"}, false},
		{"client sent no Accept-Encoding", "GET", []string{"Accept-Encoding", ""}, 200, big, []string{"Content-Type", "application/json"}, true},
		{"client prefers identity", "GET", []string{"Accept-Encoding", "identity, gzip;q=0.5"}, 200, big, []string{"Content-Type", "application/json"}, true},
		{"incompressible", "GET", nil, 200, randomBytes(4 << 10), []string{"Content-Type", "application/json"}, true},
		{"Vary * left alone", "GET", nil, 200, big[:10], []string{"Content-Type", "application/json", "Vary", "*"}, false},
	}
	f := newFilter(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := tt.reqHdr
			if hdr == nil {
				hdr = []string{"Accept-Encoding", "gzip, br, zstd"}
			}
			c := enginetest.NewCtx(t, tt.method, "/x", hdr...)
			enginetest.Serve(c, upstream(tt.status, tt.body, tt.respHdr...), f)
			h := &c.Response.Header
			if ce := string(h.ContentEncoding()); ce != "" && ce != "gzip" {
				t.Errorf("Content-Encoding = %q: compressed", ce)
			}
			if ce := string(h.ContentEncoding()); ce == "gzip" && tt.name != "already encoded" {
				t.Errorf("compressed")
			}
			if !bytes.Equal(c.Response.Body(), tt.body) {
				t.Errorf("body changed")
			}
			hasVary := strings.Contains(strings.ToLower(varyValues(h)), "accept-encoding")
			if hasVary != tt.wantVary {
				t.Errorf("Vary: Accept-Encoding present = %v, want %v (Vary %q)", hasVary, tt.wantVary, varyValues(h))
			}
		})
	}
}

func TestStreamedBodySkipped(t *testing.T) {
	f := newFilter(t, nil)
	body := jsonBody(8 << 10)
	c := enginetest.NewCtx(t, "GET", "/x", "Accept-Encoding", "gzip")
	enginetest.Serve(c, func(c *engine.Ctx) {
		c.Response.Header.SetContentType("application/json")
		c.Response.SetBodyStream(bytes.NewReader(body), len(body))
	}, f)
	if ce := c.Response.Header.ContentEncoding(); len(ce) != 0 {
		t.Fatalf("streamed body was compressed (%q)", ce)
	}
	if !c.Response.IsBodyStream() {
		t.Fatal("the stream was consumed")
	}
}

func TestVaryNotDuplicated(t *testing.T) {
	f := newFilter(t, nil)
	c := enginetest.NewCtx(t, "GET", "/x", "Accept-Encoding", "gzip")
	enginetest.Serve(c, upstream(200, jsonBody(4<<10), "Content-Type", "text/html", "Vary", "accept-encoding, Origin"), f)
	if got := varyValues(&c.Response.Header); got != "accept-encoding, Origin" {
		t.Errorf("Vary = %q", got)
	}
	if string(c.Response.Header.ContentEncoding()) != Gzip {
		t.Error("not compressed")
	}
}

func TestWeakETagKept(t *testing.T) {
	f := newFilter(t, nil)
	c := enginetest.NewCtx(t, "GET", "/x", "Accept-Encoding", "br")
	enginetest.Serve(c, upstream(200, jsonBody(4<<10), "Content-Type", "text/css", "ETag", `W/"abc"`), f)
	if got := string(c.Response.Header.Peek("ETag")); got != `W/"abc"` {
		t.Errorf("ETag = %q", got)
	}
}

func TestTypes(t *testing.T) {
	f := newFilter(t, func(c *Config) {
		c.Types = []string{"text/*", "application/json", "application/*+xml"}
	})
	for ct, want := range map[string]bool{
		"text/html":                       true,
		"TEXT/Plain; charset=utf-8":       true,
		"application/json":                true,
		"Application/JSON ; charset=utf8": true,
		"application/atom+xml":            true,
		"application/xml":                 false, // "*+xml" needs a suffix
		"application/jsonx":               false,
		"image/svg+xml":                   false,
		"text":                            false,
		"":                                false,
	} {
		if got := f.typeMatches([]byte(ct)); got != want {
			t.Errorf("typeMatches(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"unknown algorithm", func(c *Config) { c.Algorithms = []string{"deflate"} }, "algorithms"},
		{"duplicate", func(c *Config) { c.Algorithms = []string{Gzip, Gzip} }, "algorithms"},
		{"empty", func(c *Config) { c.Algorithms = nil }, "algorithms"},
		{"level range", func(c *Config) { c.Level = map[string]int{Gzip: 10} }, "level"},
		{"level unknown", func(c *Config) { c.Level = map[string]int{"lz4": 1} }, "level"},
		{"bad type", func(c *Config) { c.Types = []string{"json"} }, "types"},
		{"wildcard top", func(c *Config) { c.Types = []string{"*/*"} }, "types"},
		{"negative size", func(c *Config) { c.MinSize = -1 }, "min_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			tt.mod(&c)
			errs := engine.FieldErrors(c.Validate())
			if len(errs) != 1 {
				t.Fatalf("errors %v, want one", errs)
			}
			if fe, ok := engine.AsFieldError(errs[0]); !ok || fe.Field != tt.field {
				t.Errorf("error %v not on %s", errs[0], tt.field)
			}
		})
	}
	var c Config
	c.SetDefaults()
	c.Level = map[string]int{Zstd: 22, Brotli: 0, Gzip: 1}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults with extreme levels: %v", err)
	}
}

func encodeWith(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	switch coding {
	case Gzip:
		w := stdgzip.NewWriter(&out)
		w.Write(b)
		w.Close()
	case Brotli:
		w := brotli.NewWriter(&out)
		w.Write(b)
		w.Close()
	case Zstd:
		w, _ := zstd.NewWriter(&out)
		w.Write(b)
		w.Close()
	}
	return out.Bytes()
}

func TestDecompressRequests(t *testing.T) {
	plain := jsonBody(20 << 10)
	on := func(c *Config) { c.DecompressRequests = true }
	for _, coding := range []string{Gzip, Brotli, Zstd} {
		t.Run(coding, func(t *testing.T) {
			f := newFilter(t, on)
			c := enginetest.NewCtx(t, "POST", "/upload", "Content-Encoding", coding)
			c.Request.SetBody(encodeWith(t, coding, plain))
			var seen []byte
			var seenCE string
			enginetest.Serve(c, func(c *engine.Ctx) {
				seen = append([]byte(nil), c.Request.Body()...)
				seenCE = string(c.Request.Header.ContentEncoding())
				enginetest.OK(c)
			}, f)
			if !bytes.Equal(seen, plain) {
				t.Fatalf("upstream saw %d bytes, want the %d decoded ones", len(seen), len(plain))
			}
			if seenCE != "" {
				t.Errorf("upstream saw Content-Encoding %q", seenCE)
			}
		})
	}
	t.Run("stacked codings", func(t *testing.T) {
		f := newFilter(t, on)
		c := enginetest.NewCtx(t, "POST", "/upload", "Content-Encoding", "gzip, br")
		c.Request.SetBody(encodeWith(t, Brotli, encodeWith(t, Gzip, plain)))
		var seen []byte
		enginetest.Serve(c, func(c *engine.Ctx) { seen = append([]byte(nil), c.Request.Body()...); enginetest.OK(c) }, f)
		if !bytes.Equal(seen, plain) {
			t.Fatalf("upstream saw %d bytes", len(seen))
		}
	})
	refused := []struct {
		name   string
		coding string
		body   []byte
		status int
	}{
		{"zip bomb gzip", Gzip, encodeWith(t, Gzip, make([]byte, 4<<20)), 413},
		{"zip bomb br", Brotli, encodeWith(t, Brotli, make([]byte, 4<<20)), 413},
		{"zip bomb zstd", Zstd, encodeWith(t, Zstd, make([]byte, 4<<20)), 413},
		{"corrupt gzip", Gzip, []byte("not gzip at all"), 400},
		{"corrupt zstd", Zstd, []byte("not zstd at all"), 400},
		{"truncated br", Brotli, encodeWith(t, Brotli, plain)[:100], 400},
		{"unknown coding", "compress", []byte("x"), 415},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilter(t, on) // limit 1MiB
			c := enginetest.NewCtx(t, "POST", "/upload", "Content-Encoding", tt.coding)
			c.Request.SetBody(tt.body)
			reached := false
			enginetest.Serve(c, func(c *engine.Ctx) { reached = true; enginetest.OK(c) }, f)
			if reached {
				t.Fatal("the request reached the upstream")
			}
			if c.Response.StatusCode() != tt.status {
				t.Errorf("status %d, want %d", c.Response.StatusCode(), tt.status)
			}
			if c.Failure == nil {
				t.Error("no failure recorded")
			}
		})
	}
	t.Run("off by default", func(t *testing.T) {
		f := newFilter(t, nil)
		enc := encodeWith(t, Gzip, plain)
		c := enginetest.NewCtx(t, "POST", "/upload", "Content-Encoding", "gzip")
		c.Request.SetBody(enc)
		var seen []byte
		enginetest.Serve(c, func(c *engine.Ctx) { seen = append([]byte(nil), c.Request.Body()...); enginetest.OK(c) }, f)
		if !bytes.Equal(seen, enc) {
			t.Fatal("body was changed with decompress_requests off")
		}
	})
}

// TestNoCompressAllocs: responses that are not compressed (too small, a type not listed, a
// client without Accept-Encoding) cost no allocation.
func TestNoCompressAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	f := newFilter(t, nil)
	cases := []struct {
		name, ae, ct string
		body         []byte
	}{
		{"small", "gzip, br", "application/json", []byte(`{"ok":true}`)},
		{"type", "gzip, br", "image/png", jsonBody(4 << 10)},
		{"no accept-encoding", "", "application/json", jsonBody(4 << 10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := enginetest.NewCtx(t, "GET", "/x", "Accept-Encoding", tc.ae)
			run := func() {
				c.Response.Header.Del("Vary")
				c.Response.SetStatusCode(200)
				c.Response.Header.SetContentType(tc.ct)
				c.Response.SetBody(tc.body)
				f.OnRequest(c)
				f.OnResponse(c)
			}
			run()
			if n := testing.AllocsPerRun(500, run); n != 0 {
				t.Errorf("%v allocations per response", n)
			}
			if len(c.Response.Header.ContentEncoding()) != 0 {
				t.Error("compressed")
			}
		})
	}
}

// TestCompressAllocs: with pooled encoders and output buffers, compressing allocates nothing
// in the steady state either (a GC emptying the pools may cost an occasional allocation).
func TestCompressAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	body := jsonBody(16 << 10)
	for _, alg := range []string{Zstd, Brotli, Gzip} {
		f := newFilter(t, func(c *Config) { c.Algorithms = []string{alg} })
		c := enginetest.NewCtx(t, "GET", "/x", "Accept-Encoding", alg)
		run := func() {
			c.Response.Reset()
			c.Response.Header.SetContentType("application/json")
			c.Response.SetBody(body)
			f.OnResponse(c)
		}
		run()
		n := testing.AllocsPerRun(50, run)
		t.Logf("%s: %v allocations per compressed response", alg, n)
		if n >= 1 {
			t.Errorf("%s: %v allocations per compressed response, want pooled encoders", alg, n)
		}
	}
}

func bufioReader(b *bytes.Buffer) *bufio.Reader { return bufio.NewReader(b) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}
