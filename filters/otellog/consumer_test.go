package otellog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestConsumerLogged: the verified consumer and the filter that verified it are in the JSON and
// text records, and absent without one.
func TestConsumerLogged(t *testing.T) {
	cons := &engine.Consumer{ID: "partner-acme", Method: "key_auth"}
	f, buf := newBufFilter(t, defaults())
	c := enginetest.NewCtx(t, "GET", "/")
	engine.ConsumerKey.Set(c, cons)
	out := serveOne(t, f, buf, c, upstream)
	var rec struct {
		Consumer   string `json:"consumer"`
		AuthMethod string `json:"auth_method"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Consumer != "partner-acme" || rec.AuthMethod != "key_auth" {
		t.Errorf("%v %+v in\n%s", err, rec, out)
	}
	cfg := defaults()
	cfg.Format = "text"
	f, buf = newBufFilter(t, cfg)
	c = enginetest.NewCtx(t, "GET", "/")
	engine.ConsumerKey.Set(c, cons)
	if out := serveOne(t, f, buf, c, upstream); !strings.Contains(out, " consumer=partner-acme auth_method=key_auth ") {
		t.Errorf("text record: %s", out)
	}
	f, buf = newBufFilter(t, defaults())
	if out := serveOne(t, f, buf, enginetest.NewCtx(t, "GET", "/"), upstream); strings.Contains(out, "consumer") {
		t.Errorf("a record without a consumer has one: %s", out)
	}
}
