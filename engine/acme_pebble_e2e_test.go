package engine_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters"
	"github.com/sluice-gateway/sluice/filters/ratelimit/redistest"
	"github.com/sluice-gateway/sluice/hcl"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/pebbletest"
	"github.com/valyala/fasthttp"
)

// acmeHost is the name a test gets a certificate for: the test's DNS server resolves it (and
// every name) to 127.0.0.1 for Pebble. ACME CAs refuse "localhost". Each subtest has a name of
// its own: certmagic keeps the challenges in progress per name, process-wide.
func acmeHost(challenge string) string {
	return strings.ReplaceAll(challenge, "-", "") + ".sluice.test"
}

// pebbleValidity is how long Pebble's certificates live: certmagic renews after two thirds of it
// (or at the time ARI suggests, within it), so a renewal happens within the test.
const pebbleValidity = 24 * time.Second

// acmeGateway serves the HCL src on its listeners (on ports Pebble validates on) and returns its
// log.
func acmeGateway(t *testing.T, src string) *lockedBuf {
	t.Helper()
	dir := t.TempDir()
	cfg, diags := hcl.Load(filepath.Join(dir, "gateway.hcl"), []byte(src), filters.Builtin())
	if diags.HasErrors() {
		var b bytes.Buffer
		_ = cfg.WriteDiagnostics(&b, diags)
		t.Fatalf("config does not load:\n%s", b.String())
	}
	logs := &lockedBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gw, diags := cfg.Build(engine.BuildOptions{Logger: log})
	if diags.HasErrors() {
		t.Fatalf("config does not build: %v", diags)
	}
	srv, err := engine.NewServer(gw, log)
	if err != nil {
		t.Fatal(err)
	}
	lns, err := srv.ListenAll()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeAll(lns) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return logs
}

// httpsClient dials addr whatever the name, and verifies the certificate for host against
// roots (Pebble's issuing root). Every request opens a new connection, so every request makes a
// handshake and sees the certificate being served at that moment.
func httpsClient(addr, host string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		DisableKeepAlives: true,
	}}
}

// TestACMEWithPebble has Sluice get a certificate from a real ACME server (Pebble, validation on)
// through each challenge in turn, HTTP-01 answered on its cleartext listener and TLS-ALPN-01 on
// its TLS listener, serve it, and renew it while a light load of new connections runs: every
// request of the load must succeed, and at least two certificates must have been served.
func TestACMEWithPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Pebble")
	}
	// Restored after the parallel subtests, which run once this function has returned.
	t.Cleanup(engine.SetACMERenewCheckInterval(time.Second))
	for _, challenge := range []string{engine.ChallengeHTTP01, engine.ChallengeTLSALPN01} {
		t.Run(challenge, func(t *testing.T) {
			t.Parallel()
			testACME(t, challenge)
		})
	}
}

func testACME(t *testing.T, challenge string) {
	host := acmeHost(challenge)
	httpPort, tlsPort := freePort(t), freePort(t)
	// Pebble validates the other challenge on a port nothing listens on: only the one under
	// test can succeed.
	opt := pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort, Validity: pebbleValidity}
	if challenge == engine.ChallengeHTTP01 {
		opt.TLSPort = freePort(t)
	} else {
		opt.HTTPPort = freePort(t)
	}
	peb := pebbletest.Start(t, opt)
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("hello from upstream") })
	storage := filepath.Join(t.TempDir(), "acme") // made 0700 by the gateway
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	logs := acmeGateway(t, fmt.Sprintf(`
listener "http" {
  address           = "127.0.0.1:%d"
  redirect_to_https = true
}
listener "https" {
  address = %q
  tls {
    acme {
      email        = "ops@sluice.test"
      ca_url       = %q
      ca_root_file = %q
      challenges   = [%q]
      storage_dir  = %q
    }
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "site" {
  match { hosts = [%q] }
  balancer { upstream = upstream.u }
}
`, httpPort, tlsAddr, peb.DirectoryURL, peb.MinicaFile, challenge, storage, up, host))

	roots := peb.Roots(t)
	client := httpsClient(tlsAddr, host, roots)
	get := func() (string, error) {
		resp, err := client.Get("https://" + host + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK || string(body) != "hello from upstream" {
			return "", fmt.Errorf("status %d, body %q", resp.StatusCode, body)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
	}

	// Until the certificate arrives, handshakes fail (no certificate for the name) and the
	// gateway keeps serving; then the first one succeeds.
	start := time.Now()
	var first string
	var lastErr error
	for first == "" {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no certificate within 30s; last error: %v\npebble:\n%s", lastErr, peb.Logs())
		}
		if first, lastErr = get(); lastErr != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("certificate %s served after %v", first, time.Since(start).Round(time.Millisecond))

	// A light load of new connections until a renewed certificate has been served: no request may
	// fail.
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		serials    = map[string]int{first: 0}
		firstErr   error
		stop       = make(chan struct{})
		renewed    = make(chan struct{})
		wg         sync.WaitGroup
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				serial, err := get()
				mu.Lock()
				if err != nil {
					failed.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else {
					ok.Add(1)
					serials[serial]++
					if len(serials) == 2 && serials[serial] == 1 {
						close(renewed)
					}
				}
				mu.Unlock()
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	select {
	case <-renewed:
	case <-time.After(pebbleValidity + 10*time.Second):
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests, %d failed, certificates served: %v", ok.Load()+failed.Load(), failed.Load(), serials)
	if failed.Load() != 0 {
		t.Errorf("%d requests failed during renewal; first: %v", failed.Load(), firstErr)
	}
	if len(serials) < 2 {
		t.Errorf("no renewed certificate served within %v", pebbleValidity+10*time.Second)
	}
	if ok.Load() < 20 {
		t.Errorf("only %d requests made under load", ok.Load())
	}
	// Validation went through Sluice's own listeners: certmagic answered it there.
	want := "challenge=" + challenge
	if l := logs.String(); !strings.Contains(l, "served key authentication") || !strings.Contains(l, want) {
		t.Errorf("the gateway log shows no %s validation:\n%s", challenge, l)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, _ := strconv.Atoi(strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:"))
	return p
}

// lockedBuf collects the gateway's log lines from concurrent writers.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestACMEFleetSharesRedisStorage runs two gateways sharing a Redis storage, as a fleet behind
// one address: Pebble validates on the first one's port whichever instance asked. Both serve
// the same certificate, obtained once.
func TestACMEFleetSharesRedisStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Pebble")
	}
	rs := redistest.Start(t)
	portA, portB := freePort(t), freePort(t)
	peb := pebbletest.Start(t, pebbletest.Options{HTTPPort: freePort(t), TLSPort: portA, Validity: time.Hour})
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("hello from upstream") })
	const host = "fleet.sluice.test"
	src := func(port int) string {
		return fmt.Sprintf(`
redis "shared" {
  address = %q
}
listener "https" {
  address = "127.0.0.1:%d"
  tls {
    acme {
      ca_url       = %q
      ca_root_file = %q
      challenges   = ["tls-alpn-01"]
      storage      = "redis"
      redis        = redis.shared
    }
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "site" {
  match { hosts = [%q] }
  balancer { upstream = upstream.u }
}
`, rs.Addr, port, peb.DirectoryURL, peb.MinicaFile, up, host)
	}
	logsA := acmeGateway(t, src(portA))
	logsB := acmeGateway(t, src(portB))
	roots := peb.Roots(t)
	serial := func(port int) string {
		c := httpsClient(fmt.Sprintf("127.0.0.1:%d", port), host, roots)
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := c.Get("https://" + host + "/")
			if err == nil {
				resp.Body.Close()
				return resp.TLS.PeerCertificates[0].SerialNumber.String()
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %d: no certificate within 30s: %v", port, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	a, b := serial(portA), serial(portB)
	if a != b {
		t.Errorf("the instances serve different certificates (%s, %s): each ordered its own", a, b)
	}
	obtained := strings.Count(logsA.String(), "certificate obtained successfully") + strings.Count(logsB.String(), "certificate obtained successfully")
	if obtained != 1 {
		t.Errorf("%d certificates obtained by the fleet, want 1", obtained)
	}
}

// TestACMEReloadAddsDomain: a reload whose pipelines add a host starts getting its certificate
// (the listener, and so the server, stay), and the first host keeps its certificate.
func TestACMEReloadAddsDomain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Pebble")
	}
	port := freePort(t)
	peb := pebbletest.Start(t, pebbletest.Options{HTTPPort: freePort(t), TLSPort: port, Validity: time.Hour})
	up := gatewaytest.Upstream(t, func(fc *fasthttp.RequestCtx) { fc.SetBodyString("hello from upstream") })
	storage := filepath.Join(t.TempDir(), "acme")
	src := func(hosts string) string {
		return fmt.Sprintf(`
listener "https" {
  address = "127.0.0.1:%d"
  tls {
    acme {
      ca_url       = %q
      ca_root_file = %q
      challenges   = ["tls-alpn-01"]
      storage_dir  = %q
    }
  }
}
upstream "u" {
  target { address = %q }
}
pipeline "site" {
  match { hosts = [%s] }
  balancer { upstream = upstream.u }
}
`, port, peb.DirectoryURL, peb.MinicaFile, storage, up, hosts)
	}
	g := gatewaytest.Start(t, src(`"a.reload.sluice.test"`))
	roots := peb.Roots(t)
	served := func(host string) string {
		c := httpsClient(g.Addrs["https"], host, roots)
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := c.Get("https://" + host + "/")
			if err == nil {
				resp.Body.Close()
				return resp.TLS.PeerCertificates[0].SerialNumber.String()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no certificate within 30s: %v\n%s", host, err, g.Logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	a := served("a.reload.sluice.test")
	g.Reload(t, src(`"a.reload.sluice.test", "b.reload.sluice.test"`))
	b := served("b.reload.sluice.test")
	if b == a {
		t.Errorf("b got a's certificate (%s)", a)
	}
	if again := served("a.reload.sluice.test"); again != a {
		t.Errorf("a's certificate changed over the reload: %s, then %s", a, again)
	}
}
