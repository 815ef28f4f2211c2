package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkScaffoldConfig loads a scaffolded project's module the way `sluice validate` and `sluice
// run` do: with its own configuration it builds; with a mistyped one (a misspelt key, a number
// for a string) the load fails and the diagnostic quotes the filter's own message, with and
// without a timeout (the module as built, and rewritten with the interrupt checks).
func checkScaffoldConfig(t *testing.T, wasm string) {
	t.Helper()
	cases := []struct {
		config string
		want   []string // in the diagnostic; empty: the config is accepted
	}{
		{`{ header = "x-tag", value = "yes" }`, nil},
		{`{ heder = "x-tag" }`, []string{"my-filter: config:", "heder"}},
		{`{ value = 1 }`, []string{"my-filter: config:", "value"}},
	}
	for _, timeout := range []string{"", `timeout = "1s"`} {
		for _, tc := range cases {
			for _, validating := range []bool{true, false} {
				dir := t.TempDir()
				src := fmt.Sprintf(`upstream "u" {
  target { address = "127.0.0.1:1" }
}
pipeline "p" {
  filter "wasm" {
    module = %q
    config = %s
    %s
  }
  balancer { upstream = upstream.u }
}
`, wasm, tc.config, timeout)
				path := filepath.Join(dir, "gateway.hcl")
				if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				gw, ok := loadAndBuild(path, &out, validating, slog.New(slog.NewTextHandler(io.Discard, nil)))
				name := fmt.Sprintf("config %s %s validating=%v", tc.config, timeout, validating)
				if ok {
					_ = gw.Close()
				}
				switch {
				case tc.want == nil && !ok:
					t.Errorf("%s: refused:\n%s", name, out.String())
				case tc.want != nil && ok:
					t.Errorf("%s: accepted", name)
				}
				for _, w := range tc.want {
					if !strings.Contains(out.String(), w) {
						t.Errorf("%s: the diagnostic lacks %q:\n%s", name, w, out.String())
					}
				}
			}
		}
	}
}
