package hcl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	sluicehcl "github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// buildDiags loads and builds src as dir/gateway.hcl and returns every diagnostic.
func buildDiags(t *testing.T, dir, src string) hcl.Diagnostics {
	t.Helper()
	path := filepath.Join(dir, "gateway.hcl")
	cfg, diags := sluicehcl.Load(path, []byte(src), filters.Builtin())
	if diags.HasErrors() {
		return diags
	}
	gw, bd := cfg.Build(engine.BuildOptions{Validating: true})
	if gw != nil {
		_ = gw.Close()
	}
	return append(diags, bd...)
}

const tlsListener = `
listener "public" {
  address = "127.0.0.1:8443"
  tls {
    certificate {
      cert_file = "a.pem"
      key_file  = "a-key.pem"
    }
    certificate {
      cert_file = "b.pem"
      key_file  = "%s"
    }
  }
}
upstream "u" {
  target { address = "127.0.0.1:9000" }
}
pipeline "p" {
  match { hosts = [%s] }
  balancer { upstream = upstream.u }
}
`

// TestCertificateDiagnostics: a key that does not match its certificate is an error at that
// certificate block's key_file; a pipeline host no certificate covers is a warning.
func TestCertificateDiagnostics(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	ca.Issue(t, dir, "a.pem", "a-key.pem", "a.example.test")
	ca.Issue(t, dir, "b.pem", "b-key.pem", "*.b.example.test")

	diags := buildDiags(t, dir, fmt.Sprintf(tlsListener, "b-key.pem", `"a.example.test", "x.b.example.test", "*.b.example.test"`))
	if len(diags) != 0 {
		t.Fatalf("covered hosts: %v", diags)
	}

	diags = buildDiags(t, dir, fmt.Sprintf(tlsListener, "a-key.pem", `"a.example.test"`)) // b.pem with a's key
	if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 11 || !strings.Contains(diags[0].Detail, "does not match") {
		t.Errorf("mismatched key: want an error at line 11 (the second key_file), got %v", diags)
	}

	diags = buildDiags(t, dir, fmt.Sprintf(tlsListener, "b-key.pem", `"a.example.test", "c.example.test", "127.0.0.1"`))
	if diags.HasErrors() || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || !strings.Contains(diags[0].Detail, `"c.example.test"`) {
		t.Errorf("uncovered host: want one warning naming c.example.test, got %v", diags)
	}
}

// TestSessionTicketKeyFileTooShort: a short key file is an error at its attribute.
func TestSessionTicketKeyFileTooShort(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	ca.Issue(t, dir, "a.pem", "a-key.pem", "localhost")
	if err := os.WriteFile(filepath.Join(dir, "tickets"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	diags := buildDiags(t, dir, `
server {
  tls {
    cert_file = "a.pem"
    key_file  = "a-key.pem"
    session_ticket_key_file = "tickets"
  }
}
upstream "u" {
  target { address = "127.0.0.1:9000" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`)
	if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 6 || !strings.Contains(diags[0].Detail, "at least 32") {
		t.Errorf("want an error at session_ticket_key_file (line 6), got %v", diags)
	}
}

// TestListenerWithoutPipelines: a listener every pipeline excludes is warned about.
func TestListenerWithoutPipelines(t *testing.T) {
	diags := buildDiags(t, t.TempDir(), `
listener "a" {
  address = "127.0.0.1:8081"
}
listener "b" {
  address = "127.0.0.1:8082"
}
upstream "u" {
  target { address = "127.0.0.1:9000" }
}
pipeline "p" {
  match { listeners = ["a"] }
  balancer { upstream = upstream.u }
}
`)
	if diags.HasErrors() || len(diags) != 1 || diags[0].Summary != "Listener without pipelines" || diags[0].Subject.Start.Line != 5 {
		t.Errorf("want one warning on listener b (line 5), got %v", diags)
	}
}
