package grpcweb_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
)

// TestExampleConfig serves examples/grpc-web/gateway.hcl (its service address replaced by a
// test interop server's) and makes the calls its README shows: the preflight, EmptyCall in
// binary and text, and a method the service does not have.
func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("../../examples/grpc-web/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(src), `"127.0.0.1:50051"`, `"`+interopServer(t)+`"`, 1)
	if cfg == string(src) {
		t.Fatal("the example's target address changed: update this test")
	}
	gw := gatewaytest.Start(t, cfg)
	client := &http.Client{Timeout: 20 * time.Second}
	do := func(method, path, body string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, gw.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	const empty = "/grpc.testing.TestService/EmptyCall"

	resp, _ := do("OPTIONS", empty, "", "Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type,x-grpc-web")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	// The empty message's frame, then the trailer frame (its fields in any order).
	trailers := func(what, body string) {
		t.Helper()
		const msg = "\x00\x00\x00\x00\x00"
		rest, ok := strings.CutPrefix(body, msg)
		if !ok || len(rest) < 5 || rest[0] != 0x80 || int(rest[4]) != len(rest)-5 ||
			!strings.Contains(rest, "grpc-status: 0\r\n") || !strings.Contains(rest, "grpc-message: \r\n") {
			t.Errorf("%s EmptyCall: %q, want an empty message, then a trailer frame with grpc-status: 0", what, body)
		}
	}
	_, body := do("POST", empty, "\x00\x00\x00\x00\x00", "Content-Type", "application/grpc-web+proto", "X-Grpc-Web", "1")
	trailers("binary", body)

	_, body = do("POST", empty, "AAAAAAA=", "Content-Type", "application/grpc-web-text", "X-Grpc-Web", "1")
	msg, frame, ok := strings.Cut(body, "=")
	if !ok || msg != "AAAAAAA" {
		t.Fatalf("text EmptyCall: %q, want the message's base64 run AAAAAAA= first", body)
	}
	dec, err := base64.StdEncoding.DecodeString(frame)
	if err != nil {
		t.Fatalf("text EmptyCall: trailer frame %q: %v", frame, err)
	}
	trailers("text", "\x00\x00\x00\x00\x00"+string(dec))

	resp, _ = do("POST", "/grpc.testing.TestService/NoSuchCall", "\x00\x00\x00\x00\x00", "Content-Type", "application/grpc-web+proto")
	if resp.Header.Get("Grpc-Status") != "12" {
		t.Errorf("unknown method: grpc-status %q, want 12", resp.Header.Get("Grpc-Status"))
	}
}
