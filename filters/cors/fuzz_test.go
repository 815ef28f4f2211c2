package cors

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
)

// FuzzPreflight: whatever the Origin, method and requested headers, a preflight is answered
// here, and it carries Access-Control-Allow-Origin only for an allowed origin, echoed exactly.
func FuzzPreflight(f *testing.F) {
	f.Add("https://app.example.com", "PUT", "content-type")
	f.Add("https://app.example.evil.com", "PUT", "")
	f.Add("https://a.b.example.com", "DELETE", "x-request-id, content-type")
	f.Add("null", "GET", ",,,")
	f.Add("https://-.example.com", "PATCH", " content-type ,x-request-id")
	flt := build(f, func(c *Config) { c.AllowCredentials = true })
	f.Fuzz(func(t *testing.T, origin, method, headers string) {
		for _, s := range []string{origin, method, headers} {
			if strings.ContainsAny(s, "\r\n\x00") || strings.TrimSpace(s) != s {
				return // not a header value fasthttp admits as such
			}
		}
		if origin == "" || method == "" || strings.ContainsAny(method, " \t") {
			return
		}
		c := preflightCtx(t, origin, method, headers)
		if flt.OnRequest(c) != engine.Respond {
			t.Fatal("a preflight went on")
		}
		acao := string(c.Response.Header.Peek("Access-Control-Allow-Origin"))
		if acao != "" && (acao != origin || !flt.allowed([]byte(origin))) {
			t.Fatalf("ACAO %q for origin %q", acao, origin)
		}
		if flt.allowed([]byte(origin)) && origin != "https://app.example.com" {
			rest, ok := strings.CutSuffix(strings.TrimPrefix(origin, "https://"), ".example.com")
			if !strings.HasPrefix(origin, "https://") || !ok || rest == "" || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				t.Fatalf("origin %q allowed", origin)
			}
		}
	})
}
