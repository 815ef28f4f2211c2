package grpcweb_test

// gRPC-Web calls through a real gateway to a real gRPC server: grpc-go's interop test server
// over h2c. The grpc module is imported by this test only, so it does not enter the gateway
// binary.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// interopServer serves grpc-go's interop TestService over h2c on a loopback port.
func interopServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func grpcGatewayConfig(upstream string) string {
	return fmt.Sprintf(`
server {
  protocols = ["http1", "h2c"]
}
upstream "interop" {
  protocol = "h2c"
  target {
    address = %q
  }
}
pipeline "grpc-web" {
  match {
    path_prefix = "/grpc.testing.TestService/"
  }
  filter "grpc_web" {
    allow_origins = ["https://app.example"]
  }
  balancer {
    upstream = upstream.interop
  }
}
`, upstream)
}

// webCall is one gRPC-Web call's answer: its messages, the trailer frame's fields and the
// response headers.
type webCall struct {
	header   http.Header
	messages [][]byte
	trailers map[string]string
	arrived  []time.Time // when each message and the trailer frame were read
}

// callWeb makes a gRPC-Web call of method with msg as its one request message.
func callWeb(t *testing.T, client *http.Client, url, ct string, msg proto.Message, header ...string) webCall {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	body := msgFrame(0, string(b))
	text := strings.HasPrefix(ct, "application/grpc-web-text")
	if text {
		body = []byte(base64.StdEncoding.EncodeToString(body))
	}
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Grpc-Web", "1")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	call := webCall{header: resp.Header}
	var r io.Reader = resp.Body
	if text {
		r = &textReader{r: r}
	}
	for {
		head := make([]byte, 5)
		if _, err := io.ReadFull(r, head); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		p := make([]byte, int(head[1])<<24|int(head[2])<<16|int(head[3])<<8|int(head[4]))
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		call.arrived = append(call.arrived, time.Now())
		if head[0]&0x80 == 0 {
			call.messages = append(call.messages, p)
			continue
		}
		call.trailers = map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(p), "\r\n"), "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			call.trailers[k] = strings.TrimSpace(v)
		}
	}
	if len(resp.Trailer) != 0 {
		t.Errorf("HTTP trailers sent to a gRPC-Web client: %v", resp.Trailer)
	}
	return call
}

// status is the call's grpc-status: the trailer frame's, or the header's for a trailers-only
// response.
func (c webCall) status() string {
	if s, ok := c.trailers["grpc-status"]; ok {
		return s
	}
	return c.header.Get("Grpc-Status")
}

// TestGRPCWebInterop: grpc-web and grpc-web-text clients, over HTTP/1.1 and over HTTP/2, call
// grpc-go's interop server through the gateway: unary calls (with metadata both ways, an error
// status, an unknown method) and a server stream whose messages arrive as they are sent.
func TestGRPCWebInterop(t *testing.T) {
	gw := gatewaytest.Start(t, grpcGatewayConfig(interopServer(t)))
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	clients := map[string]*http.Client{
		"HTTP/1.1": {Timeout: 20 * time.Second},
		"HTTP/2":   {Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: &h2c}},
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		client := clients[proto]
		for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text"} {
			t.Run(proto+" "+ct, func(t *testing.T) {
				testInterop(t, client, gw.URL, ct)
			})
		}
	}
}

func testInterop(t *testing.T, client *http.Client, base, ct string) {
	svc := base + "/grpc.testing.TestService/"
	wantCT := "application/grpc-web"
	if strings.Contains(ct, "text") {
		wantCT = "application/grpc-web-text"
	}

	// Unary, with metadata echoed as a header and as a trailer.
	call := callWeb(t, client, svc+"UnaryCall", ct, &testgrpc.SimpleRequest{ResponseSize: 314, Payload: &testgrpc.Payload{Body: make([]byte, 271)}},
		"x-grpc-test-echo-initial", "initial-value", "x-grpc-test-echo-trailing-bin", base64.StdEncoding.EncodeToString([]byte{0xab, 0xab, 0xab}),
		"Origin", "https://app.example")
	if !strings.HasPrefix(call.header.Get("Content-Type"), wantCT) || call.status() != "0" || len(call.messages) != 1 {
		t.Fatalf("unary: Content-Type %q, status %q, %d messages", call.header.Get("Content-Type"), call.status(), len(call.messages))
	}
	var resp testgrpc.SimpleResponse
	if err := proto.Unmarshal(call.messages[0], &resp); err != nil || len(resp.GetPayload().GetBody()) != 314 {
		t.Errorf("unary answer: %v, %d bytes of payload", err, len(resp.GetPayload().GetBody()))
	}
	if v := call.header.Get("X-Grpc-Test-Echo-Initial"); v != "initial-value" {
		t.Errorf("initial metadata %q", v)
	}
	if v := call.trailers["x-grpc-test-echo-trailing-bin"]; v != "q6ur" {
		t.Errorf("trailing metadata %q, want q6ur (base64 of ab ab ab); trailers %v", v, call.trailers)
	}
	if v := call.header.Get("Access-Control-Allow-Origin"); v != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin %q", v)
	}

	// An error status: the server answers trailers-only, the status in the headers.
	call = callWeb(t, client, svc+"UnaryCall", ct, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 2, Message: "test status message"}})
	if call.status() != "2" || len(call.messages) != 0 {
		t.Errorf("error status: %q, %d messages; trailers %v, header %v", call.status(), len(call.messages), call.trailers, call.header)
	}
	msg := call.trailers["grpc-message"]
	if msg == "" {
		msg = call.header.Get("Grpc-Message")
	}
	if msg != "test status message" {
		t.Errorf("grpc-message %q", msg)
	}

	// A method the server does not have.
	call = callWeb(t, client, svc+"UnimplementedCall", ct, &testgrpc.Empty{})
	if call.status() != "12" {
		t.Errorf("unimplemented method: status %q", call.status())
	}

	// Server streaming: four messages, the last sent 1.5 s after the others; the first ones
	// reach the client before it.
	sizes := []int32{31415, 9, 2653, 58979}
	params := make([]*testgrpc.ResponseParameters, len(sizes))
	for i, s := range sizes {
		params[i] = &testgrpc.ResponseParameters{Size: s}
	}
	params[3].IntervalUs = 1_500_000
	call = callWeb(t, client, svc+"StreamingOutputCall", ct, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
	if call.status() != "0" || len(call.messages) != len(sizes) {
		t.Fatalf("stream: status %q, %d messages, want 0 and %d", call.status(), len(call.messages), len(sizes))
	}
	for i, m := range call.messages {
		var r testgrpc.StreamingOutputCallResponse
		if err := proto.Unmarshal(m, &r); err != nil || len(r.GetPayload().GetBody()) != int(sizes[i]) {
			t.Errorf("stream message %d: %v, %d bytes, want %d", i, err, len(r.GetPayload().GetBody()), sizes[i])
		}
	}
	if gap := call.arrived[3].Sub(call.arrived[2]); gap < 750*time.Millisecond {
		t.Errorf("the third message arrived %v before the fourth, sent 1.5 s later: the stream was held", gap)
	}
}
