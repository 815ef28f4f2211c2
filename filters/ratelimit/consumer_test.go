package ratelimit

import (
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestConsumerKey: key = "consumer" counts per verified consumer name (whichever filter verified
// it), a request without a consumer under the shared anonymous key, and each consumer's budget is
// its own.
func TestConsumerKey(t *testing.T) {
	cfg := &Config{}
	cfg.SetDefaults()
	one := 1
	cfg.Key, cfg.Limit, cfg.Period, cfg.Burst = "consumer", 1, engine.Duration(time.Hour), &one
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := newFilter(cfg, "p", "default", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	acme := &engine.Consumer{ID: "acme", Method: "key_auth"}
	acme2 := &engine.Consumer{ID: "acme", Method: "basic_auth"}
	globex := &engine.Consumer{ID: "globex", Method: "key_auth"}
	req := func(cons *engine.Consumer) *engine.Ctx {
		c := enginetest.NewCtx(t, "GET", "/")
		if cons != nil {
			engine.ConsumerKey.Set(c, cons)
		}
		return c
	}
	if f.localHash(req(acme)) != f.localHash(req(acme2)) || f.localHash(req(acme)) == f.localHash(req(globex)) ||
		f.localHash(req(nil)) != f.anonHash {
		t.Error("hashes do not follow the consumer name")
	}
	if got := f.redisKey(req(acme), "k:"); got != "k:u:=acme" {
		t.Errorf("redis key %q", got)
	}
	if got := f.redisKey(req(nil), "k:"); got != "k:anonymous" {
		t.Errorf("redis key without a consumer %q", got)
	}
	for i, tc := range []struct {
		cons *engine.Consumer
		want engine.Verdict
	}{{acme, engine.Continue}, {acme2, engine.Respond}, {globex, engine.Continue}, {nil, engine.Continue}, {nil, engine.Respond}} {
		if v := f.OnRequest(req(tc.cons)); v != tc.want {
			t.Errorf("request %d (%v): %v, want %v", i, tc.cons, v, tc.want)
		}
	}
}
