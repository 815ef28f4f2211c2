package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestVersionFlags: --version and -v print what `sluice version` prints.
func TestVersionFlags(t *testing.T) {
	want, err := exec.Command(sluiceBin, "version").Output()
	if err != nil || !strings.HasPrefix(string(want), "sluice ") {
		t.Fatalf("sluice version: %v %q", err, want)
	}
	for _, flag := range []string{"--version", "-version", "-v"} {
		out, err := exec.Command(sluiceBin, flag).Output()
		if err != nil || string(out) != string(want) {
			t.Errorf("sluice %s: %v, output %q; want %q", flag, err, out, want)
		}
	}
}

// TestSubcommandHelpExitsZero: asking a command for help is not an error; a bad flag is (2).
func TestSubcommandHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"run", "validate", "fmt", "token", "new-filter"} {
		for _, h := range []string{"-h", "--help"} {
			out, err := exec.Command(sluiceBin, cmd, h).CombinedOutput()
			if code := exitCode(err); code != 0 || !strings.Contains(string(out), "-") {
				t.Errorf("sluice %s %s: exit %d, output %q; want exit 0 with the flags", cmd, h, code, out)
			}
		}
		if _, err := exec.Command(sluiceBin, cmd, "-no-such-flag").CombinedOutput(); exitCode(err) != 2 {
			t.Errorf("sluice %s -no-such-flag: exit %d, want 2", cmd, exitCode(err))
		}
	}
}

// TestFmtStdin: `sluice fmt -` is a filter from stdin to stdout; with -check it only says
// whether stdin is formatted; unparseable input is exit 1 with a diagnostic.
func TestFmtStdin(t *testing.T) {
	run := func(stdin string, args ...string) (string, int) {
		cmd := exec.Command(sluiceBin, append([]string{"fmt"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		return string(out), exitCode(err)
	}
	ugly := "pipeline \"p\" {\nbalancer { upstream = upstream.u }\n  strip_prefix=\"/v1\"\n}\n"
	out, code := run(ugly, "-")
	want := "pipeline \"p\" {\n  balancer { upstream = upstream.u }\n  strip_prefix = \"/v1\"\n}\n"
	if code != 0 || out != want {
		t.Errorf("fmt -: exit %d, output %q; want %q", code, out, want)
	}
	if out, code := run(ugly, "-check", "-"); code != 1 || out != "-\n" {
		t.Errorf("fmt -check - on unformatted input: exit %d, output %q; want 1 and \"-\"", code, out)
	}
	if out, code := run(want, "-check", "-"); code != 0 || out != "" {
		t.Errorf("fmt -check - on formatted input: exit %d, output %q; want 0 and nothing", code, out)
	}
	if _, code := run("pipeline {{\n", "-"); code != 1 {
		t.Errorf("fmt - on unparseable input: exit %d, want 1", code)
	}
}

// TestReferenceConfigIsFormatted: the reference file is what `sluice fmt` would write.
func TestReferenceConfigIsFormatted(t *testing.T) {
	for _, f := range []string{"../../examples/reference/gateway.hcl", "../../examples/quickstart/gateway.hcl"} {
		if out, err := exec.Command(sluiceBin, "fmt", "-check", f).CombinedOutput(); err != nil {
			t.Errorf("sluice fmt -check %s: %v\n%s\n(run `sluice fmt %s`)", f, err, out, f)
		}
	}
}

// TestGoModTidy: go.mod is what `go mod tidy` makes of it (direct dependencies are not marked
// indirect), and the README names the Go version its go line needs.
func TestGoModTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go mod tidy -diff: %v\n%s", err, out)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "Go ≥ "+string(m[1])+" ") {
		t.Errorf("README.md does not say \"Go ≥ %s\", the version go.mod needs", m[1])
	}
}

// TestConfigFileArgument: the configuration file may be named without -c (`sluice run FILE`,
// as `validate FILE`), and nothing else on the command line is silently ignored: a flag after
// the file, a second file, or -c and a different file are refused with exit 2.
func TestConfigFileArgument(t *testing.T) {
	path := writeMinimalConfig(t)
	out, err := exec.Command(sluiceBin, "validate", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), path+": configuration is valid") {
		t.Fatalf("validate FILE: %v\n%s", err, out)
	}

	if _, logs := startSluiceCmd(t, nil, "run", path); !strings.Contains(logs.String(), "config="+path) {
		t.Fatalf("sluice run FILE did not serve FILE:\n%s", logs)
	}

	for _, args := range [][]string{
		{"run", path, "--watch"},
		{"run", path, path},
		{"run", "-c", path + ".other", path},
		{"validate", path, "-c", path},
		{"push", path, "--etcd", "http://127.0.0.1:9"},
	} {
		out, err := exec.Command(sluiceBin, args...).CombinedOutput()
		if exitCode(err) != 2 || !strings.Contains(string(out), "sluice "+args[0]+":") {
			t.Errorf("sluice %s: exit %d, output %q; want exit 2 saying what is wrong", strings.Join(args, " "), exitCode(err), out)
		}
	}
}
