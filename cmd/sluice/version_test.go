package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestVersionFromLdflags: what make build and make dist inject with -ldflags is what `sluice
// version` prints, the build time being the given commit time in UTC, not the clock's.
func TestVersionFromLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sluice")
	const commitTime = 1700000000 // 2023-11-14T22:13:20Z
	ld := "-X main.version=v9.8.7 -X main.commit=0123456789abcdef0123456789abcdef01234567 -X main.buildTime=1700000000"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice version: %v\n%s", err, out)
	}
	want := "sluice v9.8.7\ncommit: 0123456789abcdef0123456789abcdef01234567\ngo: " + runtime.Version() + " " +
		runtime.GOOS + "/" + runtime.GOARCH + "\nbuilt: " + time.Unix(commitTime, 0).UTC().Format(time.RFC3339) + "\n"
	if string(out) != want {
		t.Errorf("sluice version printed\n%s\nwant\n%s", out, want)
	}
	if out2, _ := exec.Command(bin, "--version").CombinedOutput(); string(out2) != want {
		t.Errorf("sluice --version printed\n%s\nwant the same as sluice version", out2)
	}
}
