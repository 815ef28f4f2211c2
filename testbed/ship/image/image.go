// Package image builds Sluice's container image without a container daemon or a pulled base:
// an empty (scratch) image plus three layers made here with go-containerregistry — Debian's CA
// certificates, an /etc/passwd and /etc/group naming the non-root user the gateway runs as, and
// the static binary. Every file's time is the commit's (SOURCE_DATE_EPOCH), so one commit
// gives one image digest.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image's layout and user.
const (
	BinaryPath = "/usr/local/bin/sluice"
	ConfigPath = "/etc/sluice/gateway.hcl"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
	UID        = 65532 // the "nonroot" id distroless images use
	User       = "65532:65532"
)

// ExposedPorts are the ports the image documents: the gateway's and the admin API's in the
// Kubernetes example.
var ExposedPorts = []string{"8080/tcp", "9901/tcp"}

// Options say what goes into the image.
type Options struct {
	Binary  string    // a static linux binary of sluice
	CACerts string    // Debian's bundle (the ca-certificates package)
	Arch    string    // amd64, arm64: the binary's
	Version string    // the release's version
	Commit  string    // the commit it was built from
	Created time.Time // the commit's time
}

// Build makes the image.
func Build(o Options) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("the binary: %w", err)
	}
	ca, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("the CA certificates (Debian's ca-certificates package): %w", err)
	}
	if len(ca) == 0 {
		return nil, fmt.Errorf("the CA certificates file %s is empty", o.CACerts)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nsluice:x:%d:%d:sluice:/nonexistent:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nsluice:x:%d:\n", UID)
	layers := []struct {
		by    string
		files []file
	}{
		{"CA certificates from Debian's ca-certificates", []file{{path: CAPath, mode: 0o644, data: ca}}},
		{"the non-root user sluice (uid 65532), /tmp", []file{
			{path: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
			{path: "/etc/group", mode: 0o644, data: []byte(group)},
			{path: "/tmp/", mode: 0o1777},
			{path: "/etc/sluice/", mode: 0o755},
		}},
		{"the sluice binary", []file{{path: BinaryPath, mode: 0o755, data: bin}}},
	}
	img := empty.Image
	for _, l := range layers {
		b, err := tarLayer(l.files, o.Created)
		if err != nil {
			return nil, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		})
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   layer,
			History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "sluice mkimage: " + l.by},
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: o.Created}
	ports := map[string]struct{}{}
	for _, p := range ExposedPorts {
		ports[p] = struct{}{}
	}
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"run", "-c", ConfigPath, "-log-format", "json"},
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CAPath},
		ExposedPorts: ports,
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "sluice",
			"org.opencontainers.image.description": "Sluice, a WebAssembly-extensible API gateway",
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.revision":    o.Commit,
			"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
			"org.opencontainers.image.source":      "https://github.com/sluice-gateway/sluice",
			"org.opencontainers.image.licenses":    "Apache-2.0",
			"org.opencontainers.image.base.name":   "scratch",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// file is one entry of a layer; a path ending in / is a directory.
type file struct {
	path string
	mode int64
	data []byte
}

// tarLayer writes files and their parent directories (0755, root-owned), sorted, at time t.
func tarLayer(files []file, t time.Time) ([]byte, error) {
	entries := map[string]file{}
	for _, f := range files {
		name := f.path[1:] // layer paths are relative
		entries[name] = f
		for i := 0; i < len(name)-1; i++ {
			if name[i] == '/' {
				if _, ok := entries[name[:i+1]]; !ok {
					entries[name[:i+1]] = file{path: "/" + name[:i+1], mode: 0o755}
				}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := entries[n]
		h := &tar.Header{Name: n, Mode: f.mode, ModTime: t, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if n[len(n)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
