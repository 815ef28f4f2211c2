package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// RSA key generation is slow (~100 ms for 2048 bits on a loaded machine): the tests share a few.
var (
	rsaOnce sync.Once
	rsaKeys [3]*rsa.PrivateKey
)

func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hmacSecret(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b { // printable, so it can sit in an HCL string
		b[i] = 'a' + b[i]%26
	}
	return b
}

// pubPEM writes key's public half as a PKIX PEM file in dir and returns its name.
func pubPEM(t testing.TB, dir, name string, priv any) string {
	t.Helper()
	pub, err := publicHalf(priv)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return name
}

// privPEM encodes a private key as PKCS #8 PEM.
func privPEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// jwksKey describes one JWKS entry: the private key whose public half is published.
type jwksKey struct {
	kid, alg, use string
	key           any
}

// jwksJSON builds a JWK Set with jwx from the keys' public halves.
func jwksJSON(t testing.TB, keys ...jwksKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := publicHalf(k.key)
		if err != nil {
			t.Fatal(err)
		}
		jk, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		if k.kid != "" {
			if err := jk.Set(jwk.KeyIDKey, k.kid); err != nil {
				t.Fatal(err)
			}
		}
		if k.alg != "" {
			if err := jk.Set(jwk.AlgorithmKey, k.alg); err != nil {
				t.Fatal(err)
			}
		}
		if k.use != "" {
			if err := jk.Set(jwk.KeyUsageKey, k.use); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.AddKey(jk); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// config returns a decoded-looking config: defaults, then mut, then Validate must pass.
func config(t testing.TB, mut func(c *Config)) *Config {
	t.Helper()
	c := &Config{}
	c.SetDefaults()
	mut(c)
	if err := c.Validate(); err != nil {
		t.Fatalf("config does not validate: %v", err)
	}
	return c
}

func testEnv(t testing.TB, dir string) *engine.BuildEnv {
	return &engine.BuildEnv{Pipeline: "api", Stage: "jwt", Dir: dir, Logger: testLogger(t)}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func build(t testing.TB, cfg *Config, dir string, opt options) *Filter {
	t.Helper()
	f, err := newFilter(cfg, testEnv(t, dir), opt)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// claimsFor returns standard claims valid for an hour from now.
func claimsFor(sub string, extra map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"sub": sub, "iat": now, "exp": now + 3600, "iss": "https://auth.example.com/", "aud": "catalog"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func mint(t testing.TB, alg string, key any, kid string, claims map[string]any) string {
	t.Helper()
	tok, err := Mint(alg, key, kid, claims)
	if err != nil {
		t.Fatalf("mint %s: %v", alg, err)
	}
	return tok
}

// run passes one request carrying headers through f and returns the context and verdict.
func run(t testing.TB, f *Filter, headers ...string) (*engine.Ctx, engine.Verdict) {
	t.Helper()
	return runURI(t, f, "/v1/items", headers...)
}

func runURI(t testing.TB, f *Filter, uri string, headers ...string) (*engine.Ctx, engine.Verdict) {
	t.Helper()
	c := enginetest.NewCtx(t, "GET", uri, headers...)
	v := f.OnRequest(c)
	return c, v
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
