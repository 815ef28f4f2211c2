package main

// The gRPC rows of the full benchmark: unary calls of grpc-go's interop server
// (testbed/cmd/grpcupstream) made with h2load, direct, through Sluice and through nginx's
// grpc_pass, all over h2c.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

const (
	portGRPCUp    = 18190 // grpcupstream
	portNginxGRPC = 18191 // nginx grpc_pass
	toolH2GRPC    = "h2load-grpc"
	grpcMethod    = "/grpc.testing.TestService/UnaryCall"
)

// grpcGroup is the gRPC rows' group.
var grpcGroup = fmt.Sprintf("gRPC unary calls, h2c, 64 conns × %d streams, 64 B messages", h2Streams)

// grpcRequestFile writes the request body h2load sends: one gRPC message frame holding a
// SimpleRequest with a 64-byte payload that asks for a 64-byte answer.
func grpcRequestFile(run string) (string, error) {
	msg, err := proto.Marshal(&testpb.SimpleRequest{ResponseSize: 64, Payload: &testpb.Payload{Body: make([]byte, 64)}})
	if err != nil {
		return "", err
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	p := filepath.Join(run, "grpc-request.bin")
	return p, os.WriteFile(p, frame, 0o644)
}

// nginxGRPCServer is nginx's grpc_pass in front of grpcupstream, with kept-alive upstream
// connections as in the HTTP rows.
func nginxGRPCServer() string {
	return fmt.Sprintf(`    upstream grpcup {
        server %s;
        keepalive 1024;
        keepalive_requests 1000000;
    }
    server {
        listen %s http2;
        location / {
            grpc_pass grpc://grpcup;
        }
    }
`, addr(portGRPCUp), addr(portNginxGRPC))
}

// grpcVariant is Sluice's empty pipeline in front of grpcupstream: h2c to clients and upstream.
func grpcVariant() sluiceVariant {
	return sluiceVariant{name: "grpc", server: "  protocols        = [\"http1\", \"h2c\"]\n",
		upstreamBlock: fmt.Sprintf("  protocol = \"h2c\"\n  target {\n    address = %q\n  }\n", addr(portGRPCUp))}
}

// planGRPCCases adds the gRPC group (full mode).
func (h *harness) planGRPCCases(add func(*benchCase), portOf func(sluiceVariant) int) {
	if h.opt.mode == "quick" {
		return
	}
	var err error
	if h.grpcBody, err = grpcRequestFile(h.run); err != nil {
		h.note("gRPC rows left out: %v", err)
		return
	}
	add(&benchCase{Label: "grpc direct", Kind: "grpcup", Group: grpcGroup, Conns: 64, Path: grpcMethod, port: portGRPCUp, Tool: toolH2GRPC, body: h.grpcBody})
	add(&benchCase{Label: "nginx", Kind: "nginx", Group: grpcGroup, Conns: 64, Path: grpcMethod, port: portNginxGRPC, Tool: toolH2GRPC, grpcUp: true, body: h.grpcBody})
	v := grpcVariant()
	if !h.sluiceOK {
		return
	}
	if err := h.checkVariant(v); err != nil {
		h.note("Sluice gRPC left out (this build has no h2c to clients or upstreams): %v", err)
		return
	}
	add(&benchCase{Label: "sluice empty", Kind: "sluice", Variant: v.name, Group: grpcGroup, Conns: 64, Path: grpcMethod, port: portOf(v), Tool: toolH2GRPC, grpcUp: true, body: h.grpcBody})
}

// runH2loadGRPC runs h2load making unary gRPC calls: POST of the request frame with gRPC's
// headers. A call that fails at the gRPC level still counts as 2xx for h2load: probeGRPC checks
// the status before the runs.
func runH2loadGRPC(cpus, url, body string, conns int, d time.Duration) (wrkResult, error) {
	secs := strconv.Itoa(max(int(d.Round(time.Second)/time.Second), 1))
	cmd := exec.Command("taskset", "-c", cpus, "h2load", "-t1", "-c"+strconv.Itoa(conns), "-m"+strconv.Itoa(h2Streams),
		"-D", secs, "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers", url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("h2load: %w: %s%s", err, firstLines(out.String(), 4), firstLines(errb.String(), 4))
	}
	return parseH2load(out.String(), cmd.ProcessState)
}

// probeGRPC makes one unary call the way h2load does and checks its gRPC status and answer.
func probeGRPC(c *benchCase, body string) error {
	b, err := os.ReadFile(body)
	if err != nil {
		return err
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", c.url(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	st := resp.Trailer.Get("Grpc-Status")
	if st == "" {
		st = resp.Header.Get("Grpc-Status")
	}
	if resp.StatusCode != http.StatusOK || st != "0" {
		return fmt.Errorf("HTTP %d, grpc-status %q, grpc-message %q", resp.StatusCode, st, resp.Trailer.Get("Grpc-Message")+resp.Header.Get("Grpc-Message"))
	}
	var r testpb.SimpleResponse
	if len(got) < 5 || proto.Unmarshal(got[5:], &r) != nil || len(r.GetPayload().GetBody()) != 64 {
		return errors.New("the answer is not a SimpleResponse with 64 bytes of payload")
	}
	return nil
}
