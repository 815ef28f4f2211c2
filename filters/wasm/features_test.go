package wasm

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/zclconf/go-cty/cty"
)

// TestProtocolFromCtx: get_protocol_version answers the protocol the client spoke, as the server
// recorded it in the Ctx, not the request's protocol bytes (which the gateway may rewrite for
// the upstream).
func TestProtocolFromCtx(t *testing.T) {
	f, _ := newFilter(t, "goguest", nil)
	c := enginetest.NewCtx(t, "GET", "/", "x-test", "info")
	c.Proto = "HTTP/1.0"
	c.Request.Header.SetProtocol("HTTP/1.1")
	enginetest.Serve(c, backend, f)
	if got := string(c.Response.Body()); !strings.Contains(got, " HTTP/1.0 ") {
		t.Errorf("info = %q, want the Ctx's protocol HTTP/1.0", got)
	}
}

// TestConfigRaw: config_raw reaches the guest byte for byte, and cannot be combined with config.
func TestConfigRaw(t *testing.T) {
	raw := "open sesame\n\x00{not json"
	f, _ := newFilter(t, "goguest", func(c *Config) { c.ConfigRaw = &raw })
	c := do(t, f, "GET", "/", "", "x-test", "config")
	if got := string(c.Response.Body()); got != raw {
		t.Errorf("get_config = %q, want %q", got, raw)
	}

	var both Config
	both.SetDefaults()
	both.Module = "x.wasm"
	both.Config = cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("b")})
	both.ConfigRaw = &raw
	var field string
	for _, err := range engine.FieldErrors(both.Validate()) {
		if fe, ok := engine.AsFieldError(err); ok {
			field = fe.Field
		}
	}
	if field != "config_raw" {
		t.Errorf("config and config_raw together: error on %q, want config_raw", field)
	}
}

// TestNotHTTPWasm: a module that speaks neither ABI is refused with one sentence saying what it
// is, when and while validating alike.
func TestNotHTTPWasm(t *testing.T) {
	for guest, want := range map[string]string{
		"wasi_command": "it is a WASI command (exports _start without a request handler)",
		"no_exports":   "the module exports no functions",
	} {
		for _, validating := range []bool{false, true} {
			f, _, err := tryFilter(t, guest, validating, nil)
			if err == nil {
				f.Close()
				t.Fatalf("%s built", guest)
			}
			msg := err.Error()
			if !strings.Contains(msg, want) || !strings.Contains(msg, "Sluice runs http-wasm guests") || !strings.Contains(msg, "proxy-wasm guests") {
				t.Errorf("%s: %v, want %q", guest, err, want)
			}
			if strings.Contains(msg, "problems") {
				t.Errorf("%s: the error lists every missing piece instead of saying what the module is: %v", guest, err)
			}
		}
	}
}

// TestBlankGuestLogLines: a blank line a guest prints is logged, like any other line.
func TestBlankGuestLogLines(t *testing.T) {
	logs := &enginetest.LogBuffer{}
	f := &Filter{log: slog.New(slog.NewTextHandler(logs, nil))}
	f.lim.guestLog.init(f, defaultLogLines, "guest log lines suppressed", prometheus.NewCounter(prometheus.CounterOpts{Name: "test_dropped"}))
	w := logWriter{f: f, stream: "stdout"}
	if _, err := w.Write([]byte("first\n\nthird\nunfinished")); err != nil {
		t.Fatal(err)
	}
	w.flush()
	w.flush() // nothing more buffered: no line
	if n := strings.Count(logs.String(), "source=guest"); n != 4 {
		t.Errorf("%d lines logged, want 4 (first, the blank one, third, unfinished):\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `msg="" source=guest`) {
		t.Errorf("the blank line is missing:\n%s", logs)
	}
}

// TestStartErrorSameInValidate: a guest whose start fails gives the same error text under
// `sluice validate` (one instance) as when the gateway builds it to serve (pool_min instances,
// started in parallel).
func TestStartErrorSameInValidate(t *testing.T) {
	var texts []string
	for _, validating := range []bool{true, false} {
		f, _, err := tryFilter(t, "start_trap", validating, func(c *Config) { c.PoolMin = 4 })
		if err == nil {
			f.Close()
			t.Fatal("built")
		}
		texts = append(texts, err.Error())
	}
	if texts[0] != texts[1] {
		t.Errorf("validate says %q, run says %q", texts[0], texts[1])
	}
	if !strings.Contains(texts[0], "get_method called outside a request") {
		t.Errorf("the error lacks the guest's own failure: %q", texts[0])
	}
}
