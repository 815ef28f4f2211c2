package engine

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestACMEConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*ACMEConfig)
		field string // "" for valid
	}{
		{"defaults", func(*ACMEConfig) {}, ""},
		{"full", func(a *ACMEConfig) {
			a.Email, a.CAURL, a.Domains = "ops@example.com", LetsEncryptStaging, []string{"example.com", "www.example.com"}
		}, ""},
		{"email", func(a *ACMEConfig) { a.Email = "ops example.com" }, "email"},
		{"email without user", func(a *ACMEConfig) { a.Email = "@example.com" }, "email"},
		{"http ca", func(a *ACMEConfig) { a.CAURL = "http://acme.example/dir" }, "ca_url"},
		{"no challenges", func(a *ACMEConfig) { a.Challenges = []string{} }, "challenges"},
		{"dns-01", func(a *ACMEConfig) { a.Challenges = []string{"dns-01"} }, "challenges"},
		{"challenge twice", func(a *ACMEConfig) { a.Challenges = []string{"http-01", "http-01"} }, "challenges"},
		{"storage", func(a *ACMEConfig) { a.Storage = "consul" }, "storage"},
		{"redis storage", func(a *ACMEConfig) { a.Storage, a.Redis = "redis", "main" }, ""},
		{"redis storage without redis", func(a *ACMEConfig) { a.Storage = "redis" }, "redis"},
		{"redis storage with storage_dir", func(a *ACMEConfig) { a.Storage, a.Redis, a.StorageDir = "redis", "main", "/x" }, "storage_dir"},
		{"redis with dir storage", func(a *ACMEConfig) { a.Redis = "main" }, "redis"},
		{"wildcard", func(a *ACMEConfig) { a.Domains = []string{"*.example.com"} }, "domains"},
		{"ip", func(a *ACMEConfig) { a.Domains = []string{"192.0.2.1"} }, "domains"},
		{"no dot", func(a *ACMEConfig) { a.Domains = []string{"localhost"} }, "domains"},
		{"upper case", func(a *ACMEConfig) { a.Domains = []string{"Example.com"} }, "domains"},
		{"twice", func(a *ACMEConfig) { a.Domains = []string{"example.com", "example.com"} }, "domains"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &ACMEConfig{}
			a.SetDefaults()
			tc.edit(a)
			err := a.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("want an error on %s, got %v", tc.field, err)
			}
		})
	}
}

func TestACMEDomainsDefault(t *testing.T) {
	l := &ListenerConfig{Name: "public", TLS: &TLSConfig{ACME: &ACMEConfig{}}}
	spec := &Spec{Pipelines: []PipelineSpec{
		{Match: MatchConfig{Hosts: []string{"api.example.com", "*.example.com", "192.0.2.7", "API.example.com"}}},
		{Match: MatchConfig{Hosts: []string{"internal.example.com"}, Listeners: []string{"private"}}},
		{Match: MatchConfig{Hosts: []string{"www.example.com"}, Listeners: []string{"public"}}},
	}}
	got := strings.Join(spec.ACMEDomains(l), ",")
	if want := "api.example.com,www.example.com"; got != want {
		t.Errorf("domains %s, want %s", got, want)
	}
	l.TLS.ACME.Domains = []string{"example.org"}
	if got := spec.ACMEDomains(l); len(got) != 1 || got[0] != "example.org" {
		t.Errorf("explicit domains: %v", got)
	}
}

// TestZapToSlog checks certmagic's zap logging lands in the gateway's slog log, with levels
// mapped and fields as attributes, and below the handler's level costs nothing.
func TestZapToSlog(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo}))
	z := zapToSlog(log).Named("obtain").With(zap.String("identifier", "example.com"))
	z.Debug("hidden")
	z.Info("certificate obtained", zap.Int("attempt", 2), zap.Error(errors.New("boom")))
	z.Warn("careful")
	z.Error("failed")
	out := b.String()
	for _, want := range []string{
		`level=INFO msg="certificate obtained" identifier=example.com logger=obtain attempt=2 error=boom`,
		`level=WARN msg=careful`, `level=ERROR msg=failed`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("a debug line passed an info-level handler:\n%s", out)
	}
}
