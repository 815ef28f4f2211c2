package image

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds a static sluice, makes the image, writes and reloads the tarball as a user's
// tools would, checks its configuration (non-root user, entrypoint, exposed ports, labels), its
// files (CA bundle, passwd naming uid 65532, the binary and nothing else) and runs the binary
// taken out of it. Two builds of the same inputs have the same digest.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary is a linux binary")
	}
	if testing.Short() {
		t.Skip("builds the gateway (-short)")
	}
	if _, err := os.Stat(CAPath); err != nil {
		t.Fatalf("Debian's ca-certificates package is needed (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -buildid= -X main.version=v0.0.0-test", "-o", bin, "./cmd/sluice")
	build.Dir = "../../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	opts := Options{Binary: bin, CACerts: CAPath, Arch: runtime.GOARCH, Version: "v0.0.0-test", Commit: "abc", Created: time.Unix(1700000000, 0).UTC()}
	img, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "image.tar")
	if err := tarball.WriteToFile(path, name.MustParseReference("sluice:test"), img); err != nil {
		t.Fatal(err)
	}

	loaded, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatalf("loading the tarball: %v", err)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || strings.HasPrefix(c.User, "0") || c.User == "root" {
		t.Errorf("User = %q, want the non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/sluice"}) || !slices.Equal(c.Cmd, []string{"run", "-c", "/etc/sluice/gateway.hcl", "-log-format", "json"}) {
		t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
	}
	for _, p := range []string{"8080/tcp", "9901/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("ExposedPorts %v lacks %s", c.ExposedPorts, p)
		}
	}
	if c.Labels["org.opencontainers.image.version"] != "v0.0.0-test" || c.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" ||
		c.Labels["org.opencontainers.image.created"] != "2023-11-14T22:13:20Z" {
		t.Errorf("labels %v", c.Labels)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Time.Equal(opts.Created) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}

	// The files: exactly these, the binary taken out to run.
	files := map[string][]byte{}
	var names []string
	tr := tar.NewReader(mutate.Extract(loaded))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(opts.Created) || h.Uid != 0 {
			t.Errorf("%s: time %v uid %d, want the commit's time and root", h.Name, h.ModTime, h.Uid)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
	slices.Sort(names)
	want := []string{"etc", "etc/group", "etc/passwd", "etc/sluice", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt",
		"tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/sluice"}
	if !slices.Equal(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}
	if !strings.Contains(string(files["etc/passwd"]), "sluice:x:65532:65532:") {
		t.Errorf("/etc/passwd:\n%s", files["etc/passwd"])
	}
	if !strings.Contains(string(files["etc/ssl/certs/ca-certificates.crt"]), "BEGIN CERTIFICATE") {
		t.Error("the CA bundle holds no certificate")
	}
	extracted := filepath.Join(dir, "extracted-sluice")
	if err := os.WriteFile(extracted, files["usr/local/bin/sluice"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extracted, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sluice v0.0.0-test\n") {
		t.Fatalf("the image's binary, run: %v\n%s", err, out)
	}

	// Reproducible: the same inputs make the same image.
	again, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: digests %s and %s", d1, d2)
	}
}
