// Package redistest runs a real redis-server for a test, on a random loopback port, and lets the
// test kill and restart it. It needs the redis-server binary (Debian package redis-server): when
// it is missing, the test fails with a message saying so, or is skipped under -short.
// REDIS_SERVER_BIN names another binary.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server process owned by one test.
type Server struct {
	// Addr is "127.0.0.1:PORT"; it stays the same across Restart.
	Addr string
	// Password is the requirepass the server was started with ("" for none).
	Password string

	t    testing.TB
	bin  string
	port int
	dir  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Options tune Start.
type Options struct {
	// Password makes the server require AUTH with it.
	Password string
	// Args are more redis-server arguments (--replicaof, --cluster-enabled, --sentinel …).
	Args []string
}

// Start runs redis-server on a free loopback port (no persistence) until the test ends, and
// returns once it answers.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, opt Options) *Server {
	t.Helper()
	bin := binary()
	if bin == "" {
		if testing.Short() {
			t.Skip("redis-server is not installed (Debian package redis-server): skipped under -short")
		}
		t.Fatal("redis-server is not installed: this test needs a real Redis. Install the Debian package " +
			"redis-server (apt-get install redis-server), or run the tests with -short to skip it.")
	}
	s := &Server{Password: opt.Password, t: t, bin: bin, dir: t.TempDir(), args: opt.Args}
	var lastErr error
	// Picking a free port and starting redis on it races with other processes; try a few.
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

// binary finds redis-server: $REDIS_SERVER_BIN if set (nothing if it does not exist), else on
// PATH, else /usr/bin/redis-server.
func binary() string {
	if p, ok := os.LookupEnv("REDIS_SERVER_BIN"); ok {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	return ""
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--daemonize", "no", "--loglevel", "warning",
	}
	if s.Password != "" {
		args = append(args, "--requirepass", s.Password)
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr) {
			s.mu.Lock()
			s.cmd, s.exited = cmd, exited
			s.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start: %s", bytes.TrimSpace(out.Bytes()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer on %s within 10s: %s", s.Addr, bytes.TrimSpace(out.Bytes()))
		}
	}
}

// ping reports whether a Redis server answers on addr (any reply counts, NOAUTH included).
func ping(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && (line[0] == '+' || line[0] == '-')
}

// Kill stops the server at once (SIGKILL), as a crash would, and waits until the port is closed.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same address (with no data: nothing is persisted).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	// The old process may still hold the port for a moment after the kill.
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("restarting redis-server on %s: %v", s.Addr, err)
}

// Running reports whether the server process is up (not killed).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing is answered, the way a
// hung or overloaded Redis looks to a client. Resume undoes it; Kill works on a paused server.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatalf("redis-server on %s is not running", s.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
}
