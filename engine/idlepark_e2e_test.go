package engine_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// waitParked waits until s has want parked connections.
func waitParked(t *testing.T, s *engine.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for engine.ParkedConns(s) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d parked connections, want %d", engine.ParkedConns(s), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleConnectionParks: a keep-alive connection idle past the park threshold gives fasthttp's
// loop up (idlepark.go) and is served again, on the same connection, when its next request
// comes: a plain one, two pipelined in one segment, and one arriving in two parts.
func TestIdleConnectionParks(t *testing.T) {
	defer engine.SetIdleParkAfter(100 * time.Millisecond)()
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		c.SetBodyString("body of " + string(c.Path()))
	})
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout = "2s"
  idle_timeout = "30s"`, up))
	conn := sendRaw(t, gw.Addr, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	readBody(t, br, "body of /first")
	waitParked(t, gw.Server, 1)

	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(conn, s); err != nil {
			t.Fatal(err)
		}
	}
	send("GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	readBody(t, br, "body of /second")
	waitParked(t, gw.Server, 1)

	send("GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
	readBody(t, br, "body of /p1")
	readBody(t, br, "body of /p2")
	waitParked(t, gw.Server, 1)

	send("GET /split HTTP/1.1\r\nHo")
	time.Sleep(50 * time.Millisecond)
	send("st: x\r\n\r\n")
	readBody(t, br, "body of /split")
	waitParked(t, gw.Server, 1)

	// A POST with a body on a parked connection.
	send("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	readBody(t, br, "body of /post")
	waitParked(t, gw.Server, 1)

	// The client closing a parked connection ends it.
	conn.Close()
	waitParked(t, gw.Server, 0)
}

// TestParkedConnectionTimesOut: idle_timeout still closes a parked connection, and Shutdown
// closes the ones still parked.
func TestParkedConnectionTimesOut(t *testing.T) {
	defer engine.SetIdleParkAfter(50 * time.Millisecond)()
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok") })
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout = "2s"
  idle_timeout = "600ms"`, up))
	conn := sendRaw(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	readBody(t, br, "ok")
	waitParked(t, gw.Server, 1)
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the gateway sent more after the response")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("parked connection closed after %v, want about idle_timeout (600ms)", d)
	}
	waitParked(t, gw.Server, 0)

	// Shutdown closes a parked connection.
	conn2 := sendRaw(t, gw.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br2 := bufio.NewReader(conn2)
	_ = conn2.SetReadDeadline(time.Now().Add(10 * time.Second))
	readBody(t, br2, "ok")
	waitParked(t, gw.Server, 1)
	gw.Stop(t)
	if _, err := br2.ReadByte(); err == nil {
		t.Fatal("a parked connection got more than its response after shutdown")
	}
}

// TestIdleParkKeepsServingManyConnections: connections park and come back round after round,
// each answered on its own connection.
func TestIdleParkKeepsServingManyConnections(t *testing.T) {
	defer engine.SetIdleParkAfter(50 * time.Millisecond)()
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("ok " + string(c.Path())) })
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout = "2s"
  idle_timeout = "30s"`, up))
	const n = 20
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	for i := range conns {
		conns[i] = sendRaw(t, gw.Addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = conns[i].SetReadDeadline(time.Now().Add(20 * time.Second))
		brs[i] = bufio.NewReader(conns[i])
		readBody(t, brs[i], "ok /a")
	}
	waitParked(t, gw.Server, n)
	for round := 0; round < 3; round++ {
		for i := range conns {
			if _, err := io.WriteString(conns[i], "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		for i := range conns {
			readBody(t, brs[i], "ok /b")
		}
	}
	waitParked(t, gw.Server, n)
	if logs := gw.Logs(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("errors logged: %s", logs)
	}
}

// TestContinueBodyNotParked: a client that waits for 100 Continue and then sends its body after
// longer than the park threshold gets its answer: the connection does not park mid-body.
func TestContinueBodyNotParked(t *testing.T) {
	defer engine.SetIdleParkAfter(50 * time.Millisecond)()
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) { c.SetBodyString("got " + string(c.Request.Body())) })
	gw := gatewaytest.Start(t, serverConfig(`
  read_timeout = "5s"
  idle_timeout = "30s"`, up))
	conn := sendRaw(t, gw.Addr, "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("%q, %v; want 100 Continue", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // several park thresholds and watchdog ticks
	if _, err := io.WriteString(conn, "hello"); err != nil {
		t.Fatal(err)
	}
	readBody(t, br, "got hello")
}
