package ratelimit

import (
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

// TestClientCertKeys: key = "client_cert" counts per certificate fingerprint, the
// client_cert:NAME keys per subject or first SAN, and a request without a certificate counts
// under the anonymous key.
func TestClientCertKeys(t *testing.T) {
	a := &engine.ClientCert{Subject: "CN=a", Fingerprint: "aa", URISANs: []string{"spiffe://x/a"}, DNSSANs: []string{"a.internal"}}
	a2 := &engine.ClientCert{Subject: "CN=a", Fingerprint: "a2", URISANs: []string{"spiffe://x/a"}, DNSSANs: []string{"a.internal"}}
	b := &engine.ClientCert{Subject: "CN=b", Fingerprint: "bb", URISANs: []string{"spiffe://x/b"}}
	for _, tc := range []struct {
		key        string
		sameAsA2   bool
		redisOfA   string
		bAnonymous bool
	}{
		{"client_cert", false, "x509:=aa", false},
		{"client_cert:subject", true, "x509:=CN=a", false},
		{"client_cert:uri_san", true, "x509:=spiffe://x/a", false},
		{"client_cert:dns_san", true, "x509:=a.internal", true},
	} {
		cfg := &Config{}
		cfg.SetDefaults()
		cfg.Key, cfg.Limit, cfg.Period = tc.key, 10, engine.Duration(time.Minute)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		f, err := newFilter(cfg, "p", "default", slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		hash := func(cc *engine.ClientCert) uint64 {
			ctx := enginetest.NewCtx(t, "GET", "/")
			if cc != nil {
				engine.ClientCertKey.Set(ctx, cc)
			}
			return f.localHash(ctx)
		}
		ha, ha2, hb, hnone := hash(a), hash(a2), hash(b), hash(nil)
		if hnone != f.anonHash || ha == hnone || (hb == hnone) != tc.bAnonymous || (ha == ha2) != tc.sameAsA2 || (!tc.bAnonymous && ha == hb) {
			t.Errorf("%s: hashes a %x a2 %x b %x none %x anon %x", tc.key, ha, ha2, hb, hnone, f.anonHash)
		}
		ctx := enginetest.NewCtx(t, "GET", "/")
		engine.ClientCertKey.Set(ctx, a)
		if got := f.redisKey(ctx, "k:"); got != "k:"+tc.redisOfA {
			t.Errorf("%s: redis key %q, want %q", tc.key, got, "k:"+tc.redisOfA)
		}
	}
	if _, err := parseKey("client_cert:serial"); err == nil {
		t.Error("client_cert:serial parsed")
	}
}
