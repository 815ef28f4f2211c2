package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"os"
	"slices"
	"testing"
	"time"
)

// testCert is a self-signed certificate for names, parsed (no files).
func testCert(t testing.TB, names ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func testSet(t testing.TB) *certSet {
	s := &certSet{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	for _, names := range [][]string{{"default.test"}, {"api.example.test", "www.api.example.test"}, {"*.example.test"}, {"*.b.example.test"}} {
		s.add(testCert(t, names...))
	}
	return s
}

func TestCertSetPickAndCovers(t *testing.T) {
	s := testSet(t)
	name := func(c *tls.Certificate) string {
		if c == nil {
			return "default"
		}
		return c.Leaf.DNSNames[0]
	}
	for _, tc := range []struct{ sni, want string }{
		{"api.example.test", "api.example.test"},
		{"WWW.API.example.test", "api.example.test"},
		{"x.example.test", "*.example.test"},
		{"x.b.example.test", "*.b.example.test"}, // the more specific wildcard: the only one that covers it
		{"b.example.test", "*.example.test"},
		{"x.y.example.test", "default"},
		{"example.test", "default"},
		{"", "default"},
		{"other.test", "default"},
	} {
		if got := name(s.pick(&tls.ClientHelloInfo{ServerName: tc.sni})); got != tc.want {
			t.Errorf("pick(%q) = %s, want %s", tc.sni, got, tc.want)
		}
	}
	for host, want := range map[string]bool{
		"api.example.test": true, "a.example.test": true, "*.example.test": true, "a.b.example.test": true,
		"example.test": false, "a.c.example.test": false, "*.c.example.test": false, "default.test": true,
	} {
		if got := s.covers(host); got != want {
			t.Errorf("covers(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestCertSetPickAllocs: choosing a certificate allocates nothing for lower-case names (every
// client sends those), on the handshake path.
func TestCertSetPickAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := testSet(t)
	hellos := []*tls.ClientHelloInfo{{ServerName: "api.example.test"}, {ServerName: "x.example.test"}, {ServerName: "unknown.test"}, {}}
	if n := testing.AllocsPerRun(1000, func() {
		for _, h := range hellos {
			_ = s.pick(h)
		}
	}); n != 0 {
		t.Errorf("%v allocations per pick", n)
	}
}

func BenchmarkCertSetPick(b *testing.B) {
	s := testSet(b)
	h := &tls.ClientHelloInfo{ServerName: "x.example.test"}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.pick(h)
	}
}

// TestTicketKeyRotation: at each period the next key encrypts and the previous one still
// decrypts; two instances with the same key file derive the same keys; a changed file changes
// them.
func TestTicketKeyRotation(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/tickets.key"
	if err := os.WriteFile(file, []byte("an example secret of more than thirty-two bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc := &TLSConfig{}
	tc.SetDefaults()
	tc.SessionTicketKeyFile = file
	tc.SessionTicketRotation = Duration(time.Hour)
	a, err := newTicketKeys(tc, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newTicketKeys(tc, dir)
	if !slices.Equal(a.current, b.current) {
		t.Fatal("two instances sharing the key file derive different keys")
	}
	now := time.Now()
	if a.update(now, slog.Default()) {
		t.Error("keys changed within their period")
	}
	before := slices.Clone(a.current)
	if !a.update(now.Add(time.Hour), slog.Default()) {
		t.Fatal("keys did not rotate after a period")
	}
	if a.current[0] != before[2] || a.current[1] != before[0] {
		t.Error("after a rotation the next key must encrypt and the previous one still decrypt")
	}
	if err := os.WriteFile(file, []byte("another secret, also longer than thirty-two bytes!"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Hour).Add(time.Second)
	_ = os.Chtimes(file, later, later)
	rotated := slices.Clone(a.current)
	if !a.update(now.Add(time.Hour), slog.Default()) || a.current[0] == rotated[0] {
		t.Error("a changed key file did not change the keys")
	}
}
