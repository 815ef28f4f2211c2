package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testLeaf(t *testing.T, cn string, uris ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x1f2e), Subject: pkix.Name{CommonName: cn, Organization: []string{"Ex, Inc"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), DNSNames: []string{"a.internal"}}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestClientCertIdentity: the identity and its X-Forwarded-Client-Cert element (Envoy's
// format: Subject quoted, a value with the format's syntax characters quoted and escaped).
func TestClientCertIdentity(t *testing.T) {
	leaf := testLeaf(t, `we"ird`, "spiffe://ex.org/ns/a/sa/b", "urn:x;y")
	cc := NewClientCert(leaf)
	if cc.Serial != "1f2e" || len(cc.Fingerprint) != 64 || cc.NotAfter != leaf.NotAfter {
		t.Errorf("identity %+v", cc)
	}
	// The subject is RFC 2253 text (CN=we\"ird,O=Ex\, Inc), quoted as an HTTP quoted-string:
	// its backslashes and quotes escaped again, so that unquoting gives it back.
	want := `Hash=` + cc.Fingerprint + `;Subject="CN=we\\\"ird,O=Ex\\, Inc";URI=spiffe://ex.org/ns/a/sa/b;URI="urn:x;y";DNS=a.internal`
	if got := string(cc.XFCC()); got != want {
		t.Errorf("XFCC\n got %s\nwant %s", got, want)
	}
}

// TestClientAuthForName: exact names, wildcards one label deep, the listener's policy for the
// rest, case and trailing dots ignored.
func TestClientAuthForName(t *testing.T) {
	def := &clientAuthPolicy{id: "def"}
	a := &clientAuthPolicy{id: "a"}
	w := &clientAuthPolicy{id: "w"}
	tb := &clientAuthTable{def: def, exact: map[string]*clientAuthPolicy{}, wild: map[string]*clientAuthPolicy{}}
	tb.add("A.example.com", a)
	tb.add("*.wild.example.com", w)
	tb.add("a.example.com", w) // a second certificate for the name: the first one's policy stays
	for name, want := range map[string]*clientAuthPolicy{
		"a.example.com": a, "A.Example.COM.": a, "x.wild.example.com": w, "y.x.wild.example.com": def,
		"wild.example.com": def, "": def, "b.example.com": def,
	} {
		if got := forName(tb, name); got != want {
			t.Errorf("forName(%q) = %v, want %v", name, got.id, want.id)
		}
		if got := forName(tb, []byte(name)); got != want {
			t.Errorf("forName([]byte %q) = %v, want %v", name, got.id, want.id)
		}
	}
	if !tb.perName {
		t.Error("perName not set")
	}
}

// TestClientCertAllocs: once a connection's identity is known, a request's client certificate
// work (cleaning, the 421 check, the Key, X-Forwarded-Client-Cert) allocates nothing.
func TestClientCertAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, mode := range []string{ForwardCertSanitize, ForwardCertSanitizeSet, ForwardCertAppendForward} {
		s := testServer(t)
		s.cfg.ForwardClientCert = mode
		g := s.Gateway()
		g.headers = newHeaderPolicy(&s.cfg, nil)
		pl := &Pipeline{}
		p := &clientAuthPolicy{id: "p"}
		tb := &clientAuthTable{def: nil, exact: map[string]*clientAuthPolicy{}, wild: map[string]*clientAuthPolicy{}}
		tb.add("secure.example.com", p)
		st := &connTLS{policy: p, cert: NewClientCert(testLeaf(t, "c"))}
		fc := newRequestCtx("GET", "/")
		fc.Request.Header.SetHost("secure.example.com:8443")
		c := AcquireCtx(fc)
		allocs := testing.AllocsPerRun(1000, func() {
			fc.Request.Header.Set(HeaderXFCC, "Hash=00") // a client's: cleaning removes it
			if status := s.clean(g, c, c.Peer); status != 0 {
				t.Fatalf("clean: status %d", status)
			}
			if status := s.applyClientCert(c, st, tb); status != 0 {
				t.Fatalf("status %d", status)
			}
			s.forwardClientCert(g, c, pl)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request", mode, allocs)
		}
		if v, _ := ClientCertKey.Get(c); v != st.cert {
			t.Errorf("%s: ClientCertKey not set", mode)
		}
		want := map[string]string{ForwardCertSanitize: "", ForwardCertSanitizeSet: string(st.cert.xfcc),
			ForwardCertAppendForward: string(st.cert.xfcc)}[mode]
		if got := string(fc.Request.Header.Peek(HeaderXFCC)); got != want {
			t.Errorf("%s: X-Forwarded-Client-Cert %q, want %q", mode, got, want)
		}
		fc.Request.Header.SetHost("open.example.com")
		if status := s.applyClientCert(c, st, tb); status != 421 {
			t.Errorf("%s: another policy's host: status %d, want 421", mode, status)
		}
		ReleaseCtx(c)
	}
}

// TestSanitizeClientCertHeaders: the X-Sluice-Client-Cert-* headers go in every spelling;
// X-Forwarded-Client-Cert goes unless a trusted proxy sends it and the mode forwards.
func TestSanitizeClientCertHeaders(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		trusted  bool
		wantXFCC bool
	}{
		{ForwardCertSanitize, false, false}, {ForwardCertSanitize, true, false},
		{ForwardCertSanitizeSet, true, false}, {ForwardCertForwardOnly, false, false},
		{ForwardCertForwardOnly, true, true}, {ForwardCertAppendForward, true, true},
	} {
		pol := newHeaderPolicy(&ServerConfig{ForwardClientCert: tc.mode}, nil)
		fc := newRequestCtx("GET", "/")
		h := &fc.Request.Header
		h.Set("X-Forwarded-Client-Cert", "Hash=00")
		h.Set("x_forwarded_client_cert", "Hash=11")
		h.Set("X-Sluice-Client-Cert-Subject", "CN=admin")
		h.Set("X_SLUICE_CLIENT_CERT_URI", "spiffe://evil")
		if _, st := sanitize(h, pol, tc.trusted, nil); st != 0 {
			t.Fatalf("status %d", st)
		}
		got := string(h.Header())
		if strings.Contains(got, "Hash=11") || strings.Contains(strings.ToLower(got), "sluice") {
			t.Errorf("%s trusted=%v: kept\n%s", tc.mode, tc.trusted, got)
		}
		if has := strings.Contains(got, "Hash=00"); has != tc.wantXFCC {
			t.Errorf("%s trusted=%v: X-Forwarded-Client-Cert kept %v, want %v", tc.mode, tc.trusted, has, tc.wantXFCC)
		}
	}
}

// BenchmarkClientCertPlain is what mutual TLS adds to a request on a connection without TLS:
// the connection type check and the X-Forwarded-Client-Cert check after routing.
func BenchmarkClientCertPlain(b *testing.B) {
	s := testServer(b)
	g := s.Gateway()
	g.headers = newHeaderPolicy(&s.cfg, nil)
	fc := newRequestCtx("GET", "/")
	c := AcquireCtx(fc)
	defer ReleaseCtx(c)
	p := &Pipeline{}
	b.ReportAllocs()
	for b.Loop() {
		if s.clientCert(c, nil) != 0 {
			b.Fatal("status")
		}
		s.forwardClientCert(g, c, p)
	}
}
