// Package configsource gives a gateway its configuration from somewhere other than its own disk:
// a Bundle is a configuration file with every file it reads (Wasm modules, file() arguments,
// certificates), and a Source yields bundles as they change. The etcd source (etcd.go) is what a
// fleet of instances shares; `sluice push` writes bundles to it (push.go). Whatever the source,
// an instance writes the bundle to a folder of its own and loads it through the same
// validate-then-Swap path as a file reload, so a bundle that fails validation leaves the running
// configuration in place.
package configsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Bundle is a configuration and the files it reads, by path relative to the main file's folder.
type Bundle struct {
	// ID names the bundle's content: a SHA-256 over the paths and hashes of its files.
	ID string
	// Main is the configuration file's path among Files.
	Main  string
	Files map[string][]byte
	// Revision is where the bundle was read from (etcd's revision of its manifest), for logs.
	Revision int64
}

// A Source yields the configuration: the current bundle first, then each new one, until ctx ends.
// apply's error (a bundle that does not validate) is the source's to report; the source keeps
// going.
type Source interface {
	Watch(ctx context.Context, from *Bundle, apply func(*Bundle) error) error
}

// FromDisk reads main and the inputs under main's folder into a bundle. Inputs elsewhere are
// returned in outside: they are not carried, and each instance reads them from its own disk.
func FromDisk(main string, inputs []string) (b *Bundle, outside []string, err error) {
	main, err = filepath.Abs(main)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(main)
	b = &Bundle{Main: filepath.Base(main), Files: map[string][]byte{}}
	for _, p := range append([]string{main}, inputs...) {
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			outside = append(outside, p)
			continue
		}
		rel = filepath.ToSlash(rel)
		if _, done := b.Files[rel]; done {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		b.Files[rel] = data
	}
	b.ID = b.hash()
	return b, outside, nil
}

// hash is the bundle's ID: the main file's name and every file's path and content hash, sorted.
func (b *Bundle) hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "main %s\n", b.Main)
	for _, p := range b.paths() {
		sum := sha256.Sum256(b.Files[p])
		fmt.Fprintf(h, "%s %x\n", p, sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (b *Bundle) paths() []string {
	ps := make([]string, 0, len(b.Files))
	for p := range b.Files {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// checkPath refuses a bundle path that would leave the bundle's folder: a bundle from etcd is
// written to disk, and its paths come from whoever can write the prefix.
func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("bundle path %q is not a clean relative path", p)
	}
	return nil
}

// WriteTo writes the bundle under dir/<ID>/ (once: a folder already there is the same content)
// and returns the main file's path there.
func (b *Bundle) WriteTo(dir string) (string, error) {
	final := filepath.Join(dir, b.ID)
	main := filepath.Join(final, filepath.FromSlash(b.Main))
	if _, err := os.Stat(main); err == nil {
		return main, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".incoming-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for p, data := range b.Files {
		if err := checkPath(p); err != nil {
			return "", err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return "", err
		}
	}
	// The rename makes the folder appear whole: a crash leaves a .incoming- folder, never half a bundle.
	if err := os.Rename(tmp, final); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(main); serr != nil {
			return "", err
		}
	}
	return main, nil
}

// Prune removes the bundle folders under dir except those named in keep.
func Prune(dir string, keep ...string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".incoming-") || contains(keep, e.Name()) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
