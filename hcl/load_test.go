package hcl

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/headers"
)

var errorMark = regexp.MustCompile(`#\s*ERROR:\s*(.+)$`)

// TestErrorFixtures loads every testdata/errors file and checks that it yields exactly the
// diagnostics written on its lines as "# ERROR: summary", each on that line.
func TestErrorFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]string{}
			sc := bufio.NewScanner(bytes.NewReader(src))
			for line := 1; sc.Scan(); line++ {
				if m := errorMark.FindStringSubmatch(sc.Text()); m != nil {
					want[line] = strings.TrimSpace(m[1])
				}
			}
			diags := loadAndBuild(t, path, src)
			got := map[int][]string{}
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				if d.Subject == nil {
					t.Errorf("diagnostic without a source range: %s: %s", d.Summary, d.Detail)
					continue
				}
				if d.Subject.Filename != path {
					t.Errorf("diagnostic in file %q, want %q", d.Subject.Filename, path)
				}
				got[d.Subject.Start.Line] = append(got[d.Subject.Start.Line], d.Summary)
			}
			for line, summary := range want {
				found := false
				for _, s := range got[line] {
					if strings.Contains(s, summary) {
						found = true
					}
				}
				if !found {
					t.Errorf("line %d: want %q, got %q", line, summary, got[line])
				}
			}
			for line, sums := range got {
				if _, ok := want[line]; !ok {
					t.Errorf("line %d: unexpected %q", line, sums)
				}
			}
		})
	}
}

func loadAndBuild(t *testing.T, path string, src []byte) hcl.Diagnostics {
	t.Helper()
	cfg, diags := Load(path, src, filters.Builtin())
	if diags.HasErrors() {
		return diags
	}
	gw, bdiags := cfg.Build(engine.BuildOptions{Validating: true})
	if gw != nil {
		gw.Close()
	}
	return append(diags, bdiags...)
}

func TestValidFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.hcl")
	if len(files) == 0 {
		t.Fatal("no valid fixtures")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diags := loadAndBuild(t, path, src); diags.HasErrors() {
				var b bytes.Buffer
				cfg, _ := Load(path, src, filters.Builtin())
				_ = cfg.WriteDiagnostics(&b, diags)
				t.Fatalf("unexpected diagnostics:\n%s", b.String())
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	t.Setenv("SLUICE_TEST_TOKEN", "s3cret")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "value.txt"), []byte("from-file"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
server {
  listen           = "127.0.0.1:0"
  read_timeout     = "1500ms"
  max_header_bytes = "16KiB"
  max_body_bytes   = 1024
  trusted_proxies  = ["10.0.0.0/8", "192.168.1.1"]
}
admin {
  token = env("SLUICE_TEST_TOKEN")
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "api" {
  match {
    hosts       = ["api.example.com"]
    path_prefix = "/v1/"
    methods     = ["GET"]
  }
  strip_prefix = "/v1"
  filter "headers" {
    request_set = {
      "X-From-File" = file("value.txt")
      "X-Json"      = jsonencode({ a = 1 })
      "X-Default"   = env("SLUICE_TEST_SURELY_UNSET", "fallback")
    }
  }
  balancer { upstream = upstream.u }
}
`
	cfg, diags := Load(filepath.Join(dir, "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := cfg.Spec
	if s.Server.ReadTimeout.D().Milliseconds() != 1500 || s.Server.MaxHeaderBytes != 16<<10 || s.Server.MaxBodyBytes != 1024 {
		t.Errorf("server decoded as %+v", s.Server)
	}
	if s.Server.WriteTimeout.D().Seconds() != 30 {
		t.Errorf("default write_timeout = %v, want 30s", s.Server.WriteTimeout.D())
	}
	if s.Admin.Token != "s3cret" {
		t.Errorf("admin token = %q", s.Admin.Token)
	}
	if len(s.Pipelines) != 1 || s.Pipelines[0].Upstream != "u" || s.Pipelines[0].StripPrefix != "/v1" {
		t.Fatalf("pipelines = %+v", s.Pipelines)
	}
	hc, ok := s.Pipelines[0].Filters[0].Config.(*headers.Config)
	if !ok {
		t.Fatalf("filter config is %T, want *headers.Config", s.Pipelines[0].Filters[0].Config)
	}
	want := map[string]string{"X-From-File": "from-file", "X-Json": `{"a":1}`, "X-Default": "fallback"}
	if diff := cmp.Diff(want, hc.RequestSet); diff != "" {
		t.Errorf("request_set (-want +got):\n%s", diff)
	}
}
