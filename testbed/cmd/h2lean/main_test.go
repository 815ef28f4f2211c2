package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestAnswers checks that the prototype speaks enough HTTP/2 for the measurement: Go's h2c
// client gets the 64-byte body on many concurrent streams of one connection, and a request
// body larger than the initial windows goes through (its credit comes back by WINDOW_UPDATE),
// in both modes.
func TestAnswers(t *testing.T) {
	for _, ps := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = serve(ln, ps) }()
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &p}
		cl := &http.Client{Transport: tr}
		url := "http://" + ln.Addr().String() + "/"
		get := func(req *http.Request) error {
			resp, err := cl.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !bytes.Equal(b, body) {
				t.Errorf("per-stream %v: %s %s %q", ps, resp.Proto, resp.Status, b)
			}
			return nil
		}
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if err := get(req); err != nil {
					t.Errorf("per-stream %v: GET: %v", ps, err)
				}
			})
		}
		wg.Wait()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(strings.Repeat("x", 1<<20)))
		if err := get(req); err != nil {
			t.Errorf("per-stream %v: POST of 1 MiB: %v", ps, err)
		}
		tr.CloseIdleConnections()
		ln.Close()
	}
}
