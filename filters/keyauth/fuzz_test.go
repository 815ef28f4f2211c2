package keyauth

import (
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// FuzzKeyAuth: whatever the query and header, the filter does not panic, refuses with 401 or
// lets through only a known key, and in every case leaves neither the header nor the parameter
// in the request.
func FuzzKeyAuth(f *testing.F) {
	f.Add("a=1&api_key="+keyPartner, "")
	f.Add("api%5Fkey="+keyPartner+"&api_key=x", keyMobile)
	f.Add("api_key=%zz&&=&api_key", "")
	f.Add("", keyMobile)
	f.Add("api_key="+strings.Repeat("%41", 300), "")
	flt := newFilter(f, func(c *Config) { c.Query = "api_key" })
	f.Fuzz(func(t *testing.T, query, header string) {
		if strings.ContainsAny(query, " #\r\n\x00") || strings.ContainsAny(header, "\r\n\x00") {
			return // not a request-target or a header value fasthttp admits
		}
		hdr := []string{}
		if header != "" {
			hdr = []string{"X-API-Key", header}
		}
		c := enginetest.NewCtx(t, "GET", "/p?"+query, hdr...)
		v := flt.OnRequest(c)
		if v == engine.Respond && c.Response.StatusCode() != 401 {
			t.Fatalf("refused with %d", c.Response.StatusCode())
		}
		if v == engine.Continue {
			cons, ok := engine.ConsumerKey.Get(c)
			if !ok || (cons.ID != "partner" && cons.ID != "mobile-app") {
				t.Fatalf("let through without a consumer: %+v", cons)
			}
		}
		if c.Request.Header.Peek("X-API-Key") != nil {
			t.Fatal("the header stayed")
		}
		_, q := engine.RawPath(c.Request)
		for _, p := range strings.Split(string(q), "&") {
			name, _, _ := strings.Cut(p, "=")
			if flt.isName([]byte(name)) {
				t.Fatalf("the parameter stayed: %q", q)
			}
		}
	})
}
