package authorize

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestConsumerRules: a rule's consumers admit only the listed verified consumers; a request
// without one, or with another, gets 403 (flagged UAEX); other paths are not affected.
func TestConsumerRules(t *testing.T) {
	r := Rule{PathPrefix: "/partners/admin/", Methods: []string{"DELETE"}, Consumers: []string{"acme", "globex"}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	f := New(&Config{Rules: []Rule{r}}, "api")
	acme := &engine.Consumer{ID: "acme", Method: "key_auth"}
	other := &engine.Consumer{ID: "initech", Method: "basic_auth"}
	for _, tc := range []struct {
		method, path string
		consumer     *engine.Consumer
		want         int
	}{
		{"DELETE", "/partners/admin/x", acme, 0},
		{"DELETE", "/partners/admin/x", other, 403},
		{"DELETE", "/partners/admin/x", nil, 403},
		{"DELETE", "/partners/admin", nil, 403},
		{"GET", "/partners/admin/x", nil, 0},
		{"DELETE", "/partners/x", nil, 0},
	} {
		c := enginetest.NewCtx(t, tc.method, tc.path)
		if tc.consumer != nil {
			engine.ConsumerKey.Set(c, tc.consumer)
		}
		v := f.OnRequest(c)
		switch {
		case tc.want == 0 && v != engine.Continue:
			t.Errorf("%s %s %v: refused %d", tc.method, tc.path, tc.consumer, c.Response.StatusCode())
		case tc.want != 0 && (v != engine.Respond || c.Response.StatusCode() != tc.want || c.Flags&engine.FlagUnauthorized == 0):
			t.Errorf("%s %s %v: %v %d, want %d", tc.method, tc.path, tc.consumer, v, c.Response.StatusCode(), tc.want)
		case tc.want != 0 && !strings.Contains(c.Failure.Error(), "a consumer in [acme | globex]"):
			t.Errorf("failure %v", c.Failure)
		}
	}
	c := enginetest.NewCtx(t, "DELETE", "/partners/admin/x")
	engine.ConsumerKey.Set(c, acme)
	if n := testing.AllocsPerRun(1000, func() { f.OnRequest(c) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
	if err := (&Rule{PathPrefix: "/", Consumers: []string{""}}).Validate(); err == nil {
		t.Error("an empty consumer name passed")
	}
}

// TestConsumersNeedAnAuthFilter: rules on consumers without an authentication filter earlier
// build (basic_auth may come from elsewhere) but log a warning.
func TestConsumersNeedAnAuthFilter(t *testing.T) {
	cfg := &Config{Rules: []Rule{{PathPrefix: "/", Consumers: []string{"acme"}}}}
	for _, tc := range []struct {
		earlier []string
		warn    bool
	}{{nil, true}, {[]string{"cors", "key_auth"}, false}} {
		var buf strings.Builder
		env := &engine.BuildEnv{Pipeline: "p", Earlier: tc.earlier, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
		if _, err := build(cfg, env); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "refuse every request"); got != tc.warn {
			t.Errorf("earlier %v: warned %v, want %v (%s)", tc.earlier, got, tc.warn, buf.String())
		}
	}
}
