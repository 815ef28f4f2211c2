// Package pebbletest runs Let's Encrypt's Pebble, a small real ACME server, for a test: built
// from the Go module proxy at a pinned version, with challenge validation on, its validation
// ports pointed at the gateway's listeners, and a DNS server of the test's answering every name
// with 127.0.0.1.
package pebbletest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/fakedns"
)

// Version is the Pebble release the tests run.
const Version = "v2.10.3"

const module = "github.com/letsencrypt/pebble/v2"

// Options say where Pebble validates challenges and how long its certificates live.
type Options struct {
	HTTPPort int           // where HTTP-01 validations connect (the gateway's cleartext listener)
	TLSPort  int           // where TLS-ALPN-01 validations connect (the gateway's TLS listener)
	Validity time.Duration // of the certificates it issues
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory (https, signed by MinicaFile's CA).
	DirectoryURL string
	// MinicaFile is the PEM file of the CA that signs Pebble's own HTTPS certificate: an ACME
	// client trusts it for the directory.
	MinicaFile string
	mgmt       string // management address (roots of the issued certificates)
	out        *syncBuf
}

var (
	buildOnce sync.Once
	binary    string
	modDir    string
	buildErr  error
)

// build installs Pebble with `go install` (the module cache and build cache make repeated runs
// quick) into a folder of the user's cache, and finds its module's folder, which holds the
// minica certificates.
func build() (string, string, error) {
	buildOnce.Do(func() {
		// go test puts its own toolchain's bin folder first on PATH: this is the go testing us.
		const gobin = "go"
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		bin := filepath.Join(cache, "sluice-test", "pebble-"+Version)
		work, err := os.MkdirTemp("", "pebble-build")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(work)
		// Outside any module, so the gateway's go.mod is neither read nor changed.
		env := append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod", "GO111MODULE=on", "GOWORK=off")
		cmd := exec.Command(gobin, "install", module+"/cmd/pebble@"+Version)
		cmd.Dir, cmd.Env = work, env
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go install pebble: %v\n%s", err, out)
			return
		}
		cmd = exec.Command(gobin, "mod", "download", "-json", module+"@"+Version)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.Output()
		if err != nil {
			buildErr = fmt.Errorf("go mod download pebble: %v", err)
			return
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			buildErr = fmt.Errorf("go mod download pebble: no folder in %s", out)
			return
		}
		binary, modDir = filepath.Join(bin, "pebble"), info.Dir
	})
	return binary, modDir, buildErr
}

// Start builds and starts Pebble and a DNS server resolving every name to 127.0.0.1; both stop
// when the test ends.
func Start(t testing.TB, opt Options) *Pebble {
	t.Helper()
	bin, dir, err := build()
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := startDNS(t)
	acmeAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	certs := filepath.Join(dir, "test", "certs")
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  acmeAddr,
		"managementListenAddress":        mgmtAddr,
		"certificate":                    filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":                     filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                       opt.HTTPPort,
		"tlsPort":                        opt.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "short-lived, for renewal tests", "validityPeriod": int(opt.Validity / time.Second)}},
	}}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Pebble{DirectoryURL: "https://" + acmeAddr + "/dir", MinicaFile: filepath.Join(certs, "pebble.minica.pem"), mgmt: mgmtAddr, out: &syncBuf{}}
	cmd := exec.Command(bin, "-config", confFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once (validation itself stays on)
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce errors: the test measures the gateway
		"PEBBLE_AUTHZREUSE=0",      // every order, renewals too, validates again
		"PEBBLE_VA_ALWAYS_VALID=0") // never skip validation, whatever the environment says
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pebble's output:\n%s", p.out.String())
		}
	})
	p.waitReady(t)
	return p
}

// Logs is what Pebble printed so far.
func (p *Pebble) Logs() string { return p.out.String() }

func (p *Pebble) client(t testing.TB) *http.Client {
	pem, err := os.ReadFile(p.MinicaFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (p *Pebble) waitReady(t testing.TB) {
	t.Helper()
	c := p.client(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v\n%s", err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Roots is the pool of the root that signs the certificates Pebble issues, fetched from its
// management interface (Pebble makes a new one each run).
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client(t).Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble /roots/0: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble /roots/0 sent no PEM certificate: %q", b)
	}
	return pool
}

// startDNS serves A 127.0.0.1 for every name (and no AAAA) on a port of its own, over UDP and
// TCP (Pebble's resolver asks over TCP).
func startDNS(t testing.TB) string {
	t.Helper()
	addr, stop, err := fakedns.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
