package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/filters/jwt"
)

const demoSecret = "sluice-demo-secret-change-me-0123456789"

// verifyWith builds a real jwt filter from cfg and returns the claims it verifies in tok.
func verifyWith(t *testing.T, tok string, dir string, mut func(c *jwt.Config)) engine.Claims {
	t.Helper()
	r := engine.NewRegistry()
	jwt.Register(r)
	k, _ := r.Filter("jwt")
	cfg := k.NewConfig().(*jwt.Config)
	cfg.SetDefaults()
	mut(cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := k.Build(cfg, &engine.BuildEnv{Pipeline: "t", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := enginetest.NewCtx(t, "GET", "/", "Authorization", "Bearer "+tok)
	if f.OnRequest(c) != engine.Continue {
		t.Fatalf("minted token refused: %v", c.Failure)
	}
	cl, _ := engine.ClaimsKey.Get(c)
	return cl
}

func TestTokenHMAC(t *testing.T) {
	var out, errb bytes.Buffer
	code := mintToken([]string{"-hmac-secret", demoSecret, "-sub", "demo", "-scope", "catalog:read catalog:admin",
		"-aud", "catalog", "-iss", "https://auth.example.com/", "-claim", "tier=2", "-claim", `roles=["a","b"]`, "-claim", "team=core"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	cl := verifyWith(t, tok, "", func(c *jwt.Config) {
		c.HMACSecret = demoSecret
		c.Issuer = "https://auth.example.com/"
		c.Audiences = []string{"catalog"}
	})
	for name, want := range map[string]string{"sub": "demo", "scope": "catalog:read catalog:admin", "tier": "2", "roles": "a,b", "team": "core"} {
		if got, _ := cl.String(name, ","); got != want {
			t.Errorf("claim %s = %q, want %q", name, got, want)
		}
	}
}

func TestTokenKeyFile(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(dir, "pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)

	var out, errb bytes.Buffer
	if code := mintToken([]string{"-key", filepath.Join(dir, "key.pem"), "-sub", "svc", "-kid", "k1"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// The P-384 key picks ES384 by itself; the verifying side defaults to it from the public key.
	cl := verifyWith(t, strings.TrimSpace(out.String()), dir, func(c *jwt.Config) { c.PublicKeyFile = "pub.pem" })
	if cl["sub"] != "svc" {
		t.Errorf("sub = %v", cl["sub"])
	}
}

func TestTokenErrors(t *testing.T) {
	t.Setenv("SLUICE_TEST_EMPTY", "")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"-hmac-secret", "short"}, 1, "at least 32 bytes"},
		{[]string{"-hmac-secret", demoSecret, "-alg", "RS256"}, 1, "cannot sign RS256"},
		{[]string{"-hmac-secret", demoSecret, "-alg", "none"}, 1, "unsupported algorithm"},
		{[]string{"-hmac-secret", demoSecret, "-key", "x.pem"}, 1, "not both"},
		{[]string{"-hmac-secret-env", "SLUICE_TEST_EMPTY"}, 1, "not set"},
		{[]string{"-key", "/nonexistent/key.pem"}, 1, "no such file"},
		{[]string{"-hmac-secret", demoSecret, "-claim", "novalue"}, 1, "NAME=VALUE"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := mintToken(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errb.String(), c.code, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q on stdout on failure", c.args, out.String())
		}
	}
}

// TestTokenBinary runs the built CLI the way the quickstart does.
func TestTokenBinary(t *testing.T) {
	cmd := exec.Command(sluiceBin, "token", "-hmac-secret-env", "JWT_SECRET", "-sub", "demo", "-scope", "catalog:read")
	cmd.Env = append(os.Environ(), "JWT_SECRET="+demoSecret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sluice token: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	if strings.Count(tok, ".") != 2 || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("output %q is not one compact JWT line", out)
	}
	cl := verifyWith(t, tok, "", func(c *jwt.Config) { c.HMACSecret = demoSecret })
	if cl["sub"] != "demo" || cl["scope"] != "catalog:read" {
		t.Errorf("claims %v", cl)
	}
}
