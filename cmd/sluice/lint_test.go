package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateCatchesWhatRunRejects: addresses `sluice run` cannot bind are errors of validate,
// each at its attribute, and run refuses them the same way.
func TestValidateCatchesWhatRunRejects(t *testing.T) {
	const rest = `upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`
	for _, tc := range []struct{ name, config, want string }{
		{"port above 65535", "server {\n  listen = \"127.0.0.1:99999\"\n}\nadmin {\n  listen = \"\"\n}\n", `:2:12: error: Invalid value`},
		{"no port", "server {\n  listen = \"127.0.0.1\"\n}\nadmin {\n  listen = \"\"\n}\n", `:2:12: error: Invalid value`},
		{"admin port above 65535", "admin {\n  listen = \"127.0.0.1:70000\"\n}\n", `:2:12: error: Invalid value`},
		{"admin on the server's address", "server {\n  listen = \"127.0.0.1:18080\"\n}\nadmin {\n  listen = \"127.0.0.1:18080\"\n}\n", `:5:12: error: Admin API on the server's address`},
		{"admin on the server's port, every interface", "server {\n  listen = \":18080\"\n}\nadmin {\n  listen = \"127.0.0.1:18080\"\n}\n", `:5:12: error: Admin API on the server's address`},
		{"admin open without a token", "admin {\n  listen = \"0.0.0.0:19901\"\n}\n", `:2:12: error: Invalid value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.config+rest)
			out, err := exec.Command(sluiceBin, "validate", path).CombinedOutput()
			if exitCode(err) != 1 || !strings.Contains(string(out), filepath.Base(path)+tc.want) {
				t.Errorf("validate: exit %d, want 1 with %q:\n%s", exitCode(err), tc.want, out)
			}
			if code, out := runToExit(t, "-c", path); code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("run: exit %d, want 1 with %q:\n%s", code, tc.want, out)
			}
		})
	}
}

// TestValidateWarnsAboutDeadConfiguration: configuration that can never act is a warning with
// its location; validate still succeeds, and run prints the same warnings.
func TestValidateWarnsAboutDeadConfiguration(t *testing.T) {
	const up = `upstream "u" {
  target { address = "127.0.0.1:9" }
}
`
	listen := freePort(t)
	head := fmt.Sprintf("server {\n  listen = %q\n}\nadmin {\n  listen = \"\"\n}\n", listen)
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"empty", "# nothing yet\n", []string{": warning: Empty configuration", "404"}},
		{"same match twice", head + up + `pipeline "a" {
  match {
    path_prefix = "/api/"
    methods     = ["GET", "POST"]
  }
  balancer { upstream = upstream.u }
}
pipeline "b" {
  match {
    path_prefix = "/api/"
    methods     = ["GET"]
  }
  balancer { upstream = upstream.u }
}
`, []string{":18:3: warning: Unreachable pipeline", `Pipeline "b" can never serve a request: pipeline "a"`}},
		{"strip_prefix the path_prefix cannot carry", head + up + `pipeline "p" {
  match {
    path_prefix = "/api/"
  }
  strip_prefix = "/v1"
  balancer { upstream = upstream.u }
}
`, []string{":14:18: warning: strip_prefix never applies", `"/v1"`}},
		{"strip_prefix not at a segment boundary", head + up + `pipeline "p" {
  match {
    path_prefix = "/v10/"
  }
  strip_prefix = "/v1"
  balancer { upstream = upstream.u }
}
`, []string{":14:18: warning: strip_prefix never applies"}},
		{"admin open by choice", "admin {\n  listen         = \"0.0.0.0:19901\"\n  allow_insecure = true\n}\n" + up + "pipeline \"p\" {\n  balancer { upstream = upstream.u }\n}\n",
			[]string{":3:20: warning: Admin API open to the network without a token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.config)
			out, err := exec.Command(sluiceBin, "validate", path).CombinedOutput()
			if err != nil {
				t.Fatalf("validate: %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("validate output lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(string(out), "configuration is valid") {
				t.Errorf("validate did not accept the configuration:\n%s", out)
			}
		})
	}
	// Good neighbours of those cases stay quiet.
	quiet := writeConfig(t, head+up+`pipeline "a" {
  match {
    path_prefix = "/v1/"
    methods     = ["GET"]
  }
  strip_prefix = "/v1"
  balancer { upstream = upstream.u }
}
pipeline "b" {
  match {
    path_prefix = "/v1/"
    methods     = ["POST"]
  }
  balancer { upstream = upstream.u }
}
pipeline "c" {
  strip_prefix = "/x"
  balancer { upstream = upstream.u }
}
`)
	out, err := exec.Command(sluiceBin, "validate", quiet).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") {
		t.Errorf("validate on a configuration without dead parts: %v\n%s", err, out)
	}
	// run prints the warnings too, and serves.
	_, logs := startSluice(t, writeConfig(t, head+up+`pipeline "p" {
  match {
    path_prefix = "/api/"
  }
  strip_prefix = "/v1"
  balancer { upstream = upstream.u }
}
`))
	if !strings.Contains(logs.String(), "warning: strip_prefix never applies") {
		t.Errorf("run did not print the warning:\n%s", logs)
	}
}
