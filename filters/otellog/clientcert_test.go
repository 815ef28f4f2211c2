package otellog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/engine/enginetest"
)

var testCert = &engine.ClientCert{Subject: `CN=billing,O=Ex\, Inc`, Fingerprint: strings.Repeat("ab", 32), Serial: "1f",
	NotAfter: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), URISANs: []string{"spiffe://ex.org/ns/prod/sa/billing"}, DNSSANs: []string{"a.internal", "b.internal"}}

// TestClientCertLogged: a verified client certificate's identity is in the JSON and text records.
func TestClientCertLogged(t *testing.T) {
	f, buf := newBufFilter(t, defaults())
	c := enginetest.NewCtx(t, "GET", "/")
	engine.ClientCertKey.Set(c, testCert)
	out := serveOne(t, f, buf, c, upstream)
	var rec struct {
		ClientCert struct {
			Subject, Fingerprint, Serial, NotAfter string
			URISANs                                []string `json:"uri_sans"`
			DNSSANs                                []string `json:"dns_sans"`
		} `json:"client_cert"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := rec.ClientCert
	if got.Subject != testCert.Subject || got.Fingerprint != testCert.Fingerprint || got.Serial != "1f" ||
		len(got.URISANs) != 1 || len(got.DNSSANs) != 2 || !strings.Contains(out, `"not_after":"2030-01-02T03:04:05Z"`) {
		t.Errorf("client_cert %+v in\n%s", got, out)
	}

	cfg := defaults()
	cfg.Format = "text"
	f, buf = newBufFilter(t, cfg)
	c = enginetest.NewCtx(t, "GET", "/")
	engine.ClientCertKey.Set(c, testCert)
	out = serveOne(t, f, buf, c, upstream)
	want := ` client_cert.subject="CN=billing,O=Ex\\, Inc" client_cert.fingerprint=` + testCert.Fingerprint +
		` client_cert.serial=1f client_cert.not_after=2030-01-02T03:04:05Z client_cert.uri_sans=spiffe://ex.org/ns/prod/sa/billing client_cert.dns_sans=a.internal,b.internal upstream=`
	if !strings.Contains(out, want) {
		t.Errorf("text record lacks\n%s\nin\n%s", want, out)
	}

	// Without a certificate, no client_cert.
	f, buf = newBufFilter(t, defaults())
	if out := serveOne(t, f, buf, enginetest.NewCtx(t, "GET", "/"), upstream); strings.Contains(out, "client_cert") {
		t.Errorf("a record without a certificate has one: %s", out)
	}
}
