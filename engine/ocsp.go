package engine

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP stapling for the certificates of a listener's certificate blocks (ACME certificates are
// certmagic's, which staples its own). A certificate that names an OCSP responder and comes with
// its issuer in the chain gets the responder's signed "good" answer attached to its handshakes
// (tls.Certificate.OCSPStaple), so clients need not ask the responder themselves. The answer is
// fetched when the listener is made, refreshed past half its validity, and kept across
// certificate reloads of the same certificate; a responder that fails leaves the last valid
// answer stapled until it expires.

// ocspPoll is how often the stapler looks at its listener's certificates (a check of a few
// times per certificate; responders are asked only as said above).
var ocspPoll = 2 * time.Second

// ocspProvider staples OCSP answers on every TLS listener (a TLSProvider every registry has).
type ocspProvider struct{}

func (ocspProvider) CheckTLS(*ListenerConfig, *BuildEnv) error { return nil }

// AttachTLS starts the listener's stapler; closing the returned value stops it.
func (ocspProvider) AttachTLS(l *TLSListener) (io.Closer, error) {
	st := &stapler{l: l, client: &http.Client{Timeout: 10 * time.Second}, state: map[[32]byte]*staple{}, stop: make(chan struct{})}
	st.wg.Add(1)
	go st.run()
	return st, nil
}

// stapler keeps one listener's certificates stapled.
type stapler struct {
	l      *TLSListener
	client *http.Client
	state  map[[32]byte]*staple // by the leaf's SHA-256; only the stapler's goroutine uses it
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// staple is the latest OCSP answer for one certificate.
type staple struct {
	der                    []byte // nil: none valid yet
	thisUpdate, nextUpdate time.Time
	retry                  time.Time // no request before then (after a failure)
	backoff                time.Duration
}

func (st *stapler) Close() error {
	st.once.Do(func() { close(st.stop) })
	st.wg.Wait()
	return nil
}

func (st *stapler) run() {
	defer st.wg.Done()
	t := time.NewTicker(ocspPoll)
	defer t.Stop()
	for {
		st.update(time.Now())
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
	}
}

// update fetches the answers that are missing or past half their validity, and installs a copy
// of the listener's certificate set with the current answers stapled when that changes what
// the set staples. A set swapped in meanwhile (a reload) is left alone: the next round staples it.
func (st *stapler) update(now time.Time) {
	set := st.l.certs.Load()
	if set == nil {
		return
	}
	changed := false
	want := make([][]byte, len(set.all))
	for i, c := range set.all {
		if c.Leaf == nil || len(c.Leaf.OCSPServer) == 0 || len(c.Certificate) < 2 {
			continue
		}
		key := sha256.Sum256(c.Certificate[0])
		s := st.state[key]
		if s == nil {
			s = &staple{}
			st.state[key] = s
		}
		if s.der == nil || now.After(s.thisUpdate.Add(s.nextUpdate.Sub(s.thisUpdate)/2)) {
			if !now.Before(s.retry) {
				st.fetch(c, s, now)
			}
		}
		if s.der != nil && now.After(s.nextUpdate) {
			s.der = nil // expired: a stale answer would make strict clients fail
		}
		want[i] = s.der
		if !bytes.Equal(c.OCSPStaple, s.der) {
			changed = true
		}
	}
	if !changed {
		return
	}
	next := &certSet{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}, files: set.files, stamp: set.stamp}
	for i, c := range set.all {
		if !bytes.Equal(c.OCSPStaple, want[i]) {
			cp := *c
			cp.OCSPStaple = want[i]
			c = &cp
		}
		next.add(c)
	}
	st.l.certs.CompareAndSwap(set, next)
}

// fetch asks c's responder for its status and records a good answer in s.
func (st *stapler) fetch(c *tls.Certificate, s *staple, now time.Time) {
	names := certName(c)
	der, resp, err := st.ask(c)
	if err != nil {
		s.backoff = min(max(2*s.backoff, time.Minute), time.Hour)
		s.retry = now.Add(s.backoff)
		st.l.Log.Warn("OCSP: cannot get a staple; trying again later", "certificate", names, "retry_in", s.backoff, "err", err)
		return
	}
	s.backoff, s.retry = 0, time.Time{}
	if resp.Status != ocsp.Good {
		s.der = nil
		// Not stapled: a revoked answer would only make clients refuse the handshake sooner.
		st.l.Log.Error("OCSP: the responder says the certificate is not good: replace it", "certificate", names,
			"status", ocspStatus(resp.Status), "revoked_at", resp.RevokedAt)
		s.retry = now.Add(time.Hour)
		return
	}
	s.der, s.thisUpdate, s.nextUpdate = der, resp.ThisUpdate, resp.NextUpdate
	if s.nextUpdate.IsZero() {
		// No nextUpdate: newer answers may come at any time (RFC 6960 §2.4); refresh hourly.
		s.nextUpdate = now.Add(2 * time.Hour)
		s.thisUpdate = now
	}
	st.l.Log.Info("OCSP staple updated", "certificate", names, "next_update", s.nextUpdate)
}

// ask posts an OCSP request for c to its first responder and checks the signed answer.
func (st *stapler) ask(c *tls.Certificate) ([]byte, *ocsp.Response, error) {
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the issuer certificate: %w", err)
	}
	req, err := ocsp.CreateRequest(c.Leaf, issuer, &ocsp.RequestOptions{})
	if err != nil {
		return nil, nil, err
	}
	url := c.Leaf.OCSPServer[0]
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, nil, fmt.Errorf("responder %q is not an http(s) URL", url)
	}
	hr, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, nil, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	hr.Header.Set("Accept", "application/ocsp-response")
	res, err := st.client.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("responder %s answered %s", url, res.Status)
	}
	der, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer of %s: %w", url, err)
	}
	resp, err := ocsp.ParseResponseForCert(der, c.Leaf, issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("the answer of %s: %w", url, err)
	}
	return der, resp, nil
}

func ocspStatus(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}
