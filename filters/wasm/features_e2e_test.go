package wasm_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/wasm"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// TestConfigRawEndToEnd: config_raw in HCL reaches the guest byte for byte; with config as well
// it is a diagnostic on config_raw's line.
func TestConfigRawEndToEnd(t *testing.T) {
	gw := gatewayWith(t, wasm.Guest(t, "goguest"), `    config_raw = "open sesame"`, tckBackend)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(gw.URL + "/")
	req.Header.Set("x-test", "config")
	if err := gatewaytest.Client().Do(req, resp); err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Body()); got != "open sesame" {
		t.Errorf("the guest's config is %q, want %q", got, "open sesame")
	}

	src := `pipeline "p" {
  match {
    path_prefix = "/"
  }
  filter "wasm" {
    module     = "x.wasm"
    config     = { a = 1 }
    config_raw = "open sesame"
  }
}
`
	_, diags := hcl.Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if !diags.HasErrors() {
		t.Fatal("config and config_raw together loaded without a diagnostic")
	}
	text := diags.Error()
	if !strings.Contains(text, "config_raw") || !strings.Contains(text, ":8,") {
		t.Errorf("diagnostic %q does not point at config_raw (line 8)", text)
	}
}
