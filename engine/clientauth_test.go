package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var testSerial int64

func issueTest(t *testing.T, parent *testCA, cn string, isCA bool) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	testSerial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	if !isCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func testCRL(t *testing.T, ca *testCA, next time.Time, revoked ...*testCA) []byte {
	t.Helper()
	testSerial++
	tmpl := &x509.RevocationList{Number: big.NewInt(testSerial), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: next}
	for _, r := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: r.cert.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// TestClientAuthCRLChains: with an intermediate CA in ca_file (how its CRL is given), the
// intermediate's CRL revokes its leaves, and the root's CRL revokes the intermediate, although
// crypto/tls also builds a chain that ends at the intermediate.
func TestClientAuthCRLChains(t *testing.T) {
	root := issueTest(t, nil, "root", true)
	inter := issueTest(t, root, "inter", true)
	good := issueTest(t, inter, "good", false)
	bad := issueTest(t, inter, "bad", false)
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pemOf := func(c *testCA) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}) }
	write("ca.pem", append(pemOf(root), pemOf(inter)...))
	state := func(p *clientAuthPolicy, leaf *testCA) tls.ConnectionState {
		chains, err := leaf.cert.Verify(x509.VerifyOptions{Roots: p.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatal(err)
		}
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.cert}, VerifiedChains: chains}
	}
	load := func(crls ...[]byte) *clientAuthPolicy {
		var all []byte
		for _, c := range crls {
			all = append(all, c...)
		}
		write("crl.pem", all)
		p, err := loadClientAuth(&ClientAuthConfig{Mode: ClientAuthRequire, CAFile: "ca.pem", CRLFiles: []string{"crl.pem"}}, &BuildEnv{Dir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p := load(testCRL(t, inter, time.Now().Add(time.Hour), bad), testCRL(t, root, time.Now().Add(time.Hour)))
	if err := p.verifyConnection(state(p, good)); err != nil {
		t.Errorf("good leaf: %v", err)
	}
	if err := p.verifyConnection(state(p, bad)); !errors.Is(err, errRevoked) {
		t.Errorf("leaf revoked by the intermediate: %v", err)
	}
	p = load(testCRL(t, inter, time.Now().Add(time.Hour)), testCRL(t, root, time.Now().Add(time.Hour), inter))
	if err := p.verifyConnection(state(p, good)); !errors.Is(err, errRevoked) {
		t.Errorf("intermediate revoked by the root: %v", err)
	}
	p = load(testCRL(t, inter, time.Now().Add(-time.Second)))
	if err := p.verifyConnection(state(p, good)); !errors.Is(err, errCRLExpired) {
		t.Errorf("expired intermediate CRL: %v", err)
	}
	// A CRL signed by a CA outside ca_file is a configuration error.
	other := issueTest(t, nil, "other", true)
	write("crl.pem", testCRL(t, other, time.Now().Add(time.Hour)))
	if _, err := loadClientAuth(&ClientAuthConfig{Mode: ClientAuthRequire, CAFile: "ca.pem", CRLFiles: []string{"crl.pem"}}, &BuildEnv{Dir: dir}, nil); err == nil {
		t.Error("a CRL from a CA outside ca_file loaded")
	}
}
