package hcl

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
)

func TestDecodeHeaderSettings(t *testing.T) {
	src := `
server {
  forwarded_header  = true
  untrusted_headers = ["X-Real-IP"]
  max_uri_bytes     = "4KiB"
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "default" {
  balancer { upstream = upstream.u }
}
pipeline "none" {
  match { path_prefix = "/none/" }
  upgrades = []
  balancer { upstream = upstream.u }
}
pipeline "h2c" {
  match { path_prefix = "/h2c/" }
  upgrades = ["WebSocket", "h2c"]
  balancer { upstream = upstream.u }
}
`
	cfg, diags := Load(filepath.Join(t.TempDir(), "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := cfg.Spec
	if !s.Server.ForwardedHeader || !slices.Equal(s.Server.UntrustedHeaders, []string{"X-Real-IP"}) || s.Server.MaxURIBytes != 4<<10 {
		t.Errorf("server decoded as %+v", s.Server)
	}
	p := s.Pipelines
	if p[0].Upgrades != nil || p[1].Upgrades == nil || len(p[1].Upgrades) != 0 || !slices.Equal(p[2].Upgrades, []string{"websocket", "h2c"}) {
		t.Errorf("upgrades decoded as %q, %q, %q", p[0].Upgrades, p[1].Upgrades, p[2].Upgrades)
	}
	var def engine.ServerConfig
	def.SetDefaults()
	if !slices.Equal(def.UntrustedHeaders, engine.DefaultUntrustedHeaders) || def.MaxURIBytes != 8<<10 || def.ForwardedHeader {
		t.Errorf("defaults %+v", def)
	}
}
