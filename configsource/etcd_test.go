package configsource

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newSource(t *testing.T, endpoint string) *Etcd {
	t.Helper()
	cfg := &EtcdConfig{}
	cfg.SetDefaults()
	cfg.Endpoints, cfg.Prefix, cfg.InstanceID = []string{endpoint}, "/t", "one"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e, err := NewEtcd(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestPushChunksAndLoadVerifies: a 4 MB file goes as 1 MiB chunks (etcd refuses values over
// 1.5 MiB), comes back byte for byte, and a chunk changed behind the manifest's back is refused.
func TestPushChunksAndLoadVerifies(t *testing.T) {
	et := etcdtest.Start(t)
	e := newSource(t, et.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	big := make([]byte, 4<<20+123)
	_, _ = rand.Read(big)
	b := &Bundle{Main: "gateway.hcl", Files: map[string][]byte{"gateway.hcl": []byte("# config\n"), "wasm/big.wasm": big, "empty.txt": {}}}
	b.ID = b.hash()
	if _, err := e.Push(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := e.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != b.ID || !bytes.Equal(got.Files["wasm/big.wasm"], big) || len(got.Files) != 3 {
		t.Fatalf("loaded bundle differs: id %s (want %s), %d files", got.ID, b.ID, len(got.Files))
	}
	chunks, err := e.cli.Get(ctx, "/t/chunks/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks.Kvs) != 7 { // 5 of the big file, 1 each of the others
		t.Errorf("%d chunks stored, want 7", len(chunks.Kvs))
	}
	for _, kv := range chunks.Kvs {
		if len(kv.Value) > ChunkSize {
			t.Errorf("chunk %s is %d bytes, over %d", kv.Key, len(kv.Value), ChunkSize)
		}
	}

	// Written to disk whole, under its ID.
	main, err := got.WriteTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := os.ReadFile(filepath.Join(filepath.Dir(main), "wasm", "big.wasm")); !bytes.Equal(d, big) {
		t.Error("the module written to disk differs")
	}

	// A second push of another bundle collects the chunks neither it nor the previous one names.
	b2 := &Bundle{Main: "gateway.hcl", Files: map[string][]byte{"gateway.hcl": []byte("# two\n")}}
	b2.ID = b2.hash()
	if _, err := e.Push(ctx, b2); err != nil {
		t.Fatal(err)
	}
	b3 := &Bundle{Main: "gateway.hcl", Files: map[string][]byte{"gateway.hcl": []byte("# three\n")}}
	b3.ID = b3.hash()
	if _, err := e.Push(ctx, b3); err != nil {
		t.Fatal(err)
	}
	chunks, _ = e.cli.Get(ctx, "/t/chunks/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if len(chunks.Kvs) != 2 {
		t.Errorf("after three pushes %d chunks remain, want 2 (the current and the previous bundle's)", len(chunks.Kvs))
	}

	// Tampering: a chunk rewritten under its hash's key is refused.
	resp, _ := e.cli.Get(ctx, "/t/manifest")
	put, err := e.cli.Put(ctx, "/t/chunks/"+sha(b3.Files["gateway.hcl"]), "# evil\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.load(ctx, resp.Kvs[0].Value, put.Header.Revision); err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Errorf("a tampered chunk: err %v, want a hash mismatch", err)
	}
}

func TestBundlePathsStayInside(t *testing.T) {
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "a//b", ""} {
		b := &Bundle{ID: "x", Main: "gateway.hcl", Files: map[string][]byte{"gateway.hcl": nil, p: []byte("x")}}
		if _, err := b.WriteTo(t.TempDir()); err == nil {
			t.Errorf("path %q was written", p)
		}
	}
}

func sha(b []byte) string { return sha256Hex(b) }
