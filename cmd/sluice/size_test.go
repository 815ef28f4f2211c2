package main

import (
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestExpand: project templates substitute {{.Field}} of projectData and nothing else.
func TestExpand(t *testing.T) {
	d := projectData{Name: "hello-world", Ident: "hello_world", Header: "x-hello-world", LangName: "Go"}
	got, err := expand("{{.Name}} ({{.LangName}}) sets {{.Header}}; {{.Ident}}{{.Toolchain}}.", d)
	if want := "hello-world (Go) sets x-hello-world; hello_world."; err != nil || got != want {
		t.Errorf("expand = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"{{.Nope}}", "{{if .Name}}x{{end}}", "{{ .Name }}", "{{.Name"} {
		if out, err := expand(bad, d); err == nil {
			t.Errorf("expand(%q) = %q, want an error", bad, out)
		}
	}
	// Every embedded project template expands, leaving no action behind.
	err = fs.WalkDir(templates, "templates/project", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, _ := templates.ReadFile(p)
		out, err := expand(string(b), d)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if strings.Contains(out, "{{") {
			t.Errorf("%s: an action is left: %q", p, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReleaseBuildKeepsMethodDeadCode: the release build (tag grpcnotrace, as make build, the
// Dockerfile and the benchmark build it) links no package that calls methods by name through
// reflection. text/template and html/template do (x/net/trace, which grpc imports without the
// tag, renders its debug pages with html/template), and any reachable use makes the linker keep
// every exported method of every type: sluice grew from 44 to 62 MB with them, and on Linux
// with large folios that size is idle RSS (RATIONALE: "Where did the idle RSS go…").
func TestReleaseBuildKeepsMethodDeadCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-tags", releaseTags, "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "\nTAGS     := "+releaseTags+"\n") || strings.Count(string(mk), "-tags $(TAGS)") != 3 {
		t.Errorf("the Makefile's build, dist and image do not build with -tags %s", releaseTags)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "text/template", "html/template", "golang.org/x/net/trace":
			t.Errorf("the release build links %s: every exported method of every type is kept", pkg)
		}
	}
}

// releaseTags are the build tags of the release build (Makefile's TAGS).
const releaseTags = "grpcnotrace"
