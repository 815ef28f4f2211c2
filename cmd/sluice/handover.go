package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// A zero-downtime upgrade hands the listening sockets over instead of binding a second one.
// Every `sluice run` serves a Unix socket (the handover socket, mode 0600, peers of another user
// refused). A new process started with --takeover connects to it, receives duplicates of the
// running process's listening sockets (SCM_RIGHTS) with their configured addresses, serves them,
// and then says "ready"; the old process stops accepting, drains for at most shutdown_timeout
// and exits. Both accept from the same kernel queue until then, and when the old process closes
// its descriptors the sockets stay open in the new one: no connection is refused or reset, which
// SO_REUSEPORT alone cannot promise (a closed reuseport socket resets the connections queued on
// it, unless net.ipv4.tcp_migrate_req is 1).
//
// The exchange, on one stream connection:
//
//	new → old   "SLUICE-TAKEOVER 1\n"
//	old → new   a JSON array of handed sockets ([{"address":…,"admin":bool}]) with their
//	            descriptors in the same order as SCM_RIGHTS, in one message
//	new → old   "READY\n" once it serves them (the old one drains and exits)
//
// A new process that fails before READY (it closes the connection) leaves the old one serving.
const (
	handoverHello = "SLUICE-TAKEOVER 1\n"
	handoverReady = "READY\n"
	// handoverMaxFDs bounds the descriptors read from one handover (the kernel's SCM_MAX_FD
	// is 253); a gateway has a few listeners and an admin API.
	handoverMaxFDs = 64
	// handoverWait is how long the old process waits for READY: the new one has loaded its
	// configuration before connecting, so this covers binding and starting to serve.
	handoverWait = time.Minute
)

// handedSocket names one descriptor of a handover.
type handedSocket struct {
	Address string `json:"address"`
	Admin   bool   `json:"admin,omitempty"`
}

// handoverPath is where a gateway serving spec serves its handover socket when -takeover-socket
// is not given: in systemd's RuntimeDirectory, else $XDG_RUNTIME_DIR, else the temporary
// directory, named after the first listener's address (bound: the address it got, for a
// configured port 0), so that the old and the new process of one deployment agree on it.
func handoverPath(spec *engine.Spec, bound string) string {
	dir := os.Getenv("RUNTIME_DIRECTORY")
	if dir == "" {
		dir = os.Getenv("XDG_RUNTIME_DIR")
	}
	if dir == "" {
		dir = os.TempDir()
	}
	addr := spec.EffectiveListeners()[0].Address
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" && bound != "" {
		addr = bound
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, addr)
	return filepath.Join(dir, "sluice-"+name+".sock")
}

// handoverServer serves the handover socket of a running gateway.
type handoverServer struct {
	ln   *net.UnixListener
	path string
	st   os.FileInfo // the socket file bound at path
}

// serveHandover listens on path (replacing a socket left there by a crashed or a taken-over
// process) and hands sockets over to each process that asks: r.handed gives the sockets at that
// moment, r.takenOver is signalled when the new process is ready.
func (r *runner) serveHandover(path string) (*handoverServer, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("handover socket %s: %w", path, err)
	}
	// The socket is made owner-only before anyone can connect: the umask applies at bind.
	old := syscall.Umask(0o077)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("handover socket %s: %w", path, err)
	}
	// The process that takes over binds the path anew; this one must not remove its socket.
	ln.SetUnlinkOnClose(false)
	st, err := os.Stat(path)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("handover socket %s: %w", path, err)
	}
	h := &handoverServer{ln: ln, path: path, st: st}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			// One at a time: a second new process waits until the first is done.
			if r.handOver(c) {
				return
			}
		}
	}()
	r.log.Info("handover socket", "path", path)
	return h, nil
}

// close stops serving the handover socket; unlink also removes its path, unless a process that
// took over has bound its own socket there since.
func (h *handoverServer) close(unlink bool) {
	_ = h.ln.Close()
	if now, err := os.Stat(h.path); unlink && err == nil && os.SameFile(now, h.st) {
		_ = os.Remove(h.path)
	}
}

// handOver answers one process asking to take over; it reports whether that process is ready
// (then this one has been told to stop).
func (r *runner) handOver(c *net.UnixConn) bool {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(handoverWait))
	if err := checkPeer(c); err != nil {
		r.log.Warn("handover refused", "err", err)
		return false
	}
	br := bufio.NewReader(c)
	if hello, err := br.ReadString('\n'); err != nil || hello != handoverHello {
		r.log.Warn("handover refused: not a sluice takeover", "err", err)
		return false
	}
	socks, files, err := r.handedSockets()
	if err != nil {
		r.log.Error("handover failed", "err", err)
		return false
	}
	msg, _ := json.Marshal(socks)
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	_, _, err = c.WriteMsgUnix(msg, syscall.UnixRights(fds...), nil)
	for _, f := range files {
		_ = f.Close() // the duplicates sent; the receiver has its own now
	}
	if err != nil {
		r.log.Error("handover failed", "err", err)
		return false
	}
	r.log.Info("listening sockets handed over; waiting for the new process to be ready", "sockets", len(socks))
	if ready, err := br.ReadString('\n'); err != nil || ready != handoverReady {
		r.log.Warn("the new process did not become ready; this one keeps serving", "err", err)
		return false
	}
	select {
	case r.takenOver <- struct{}{}:
	default:
	}
	return true
}

// handedSockets duplicates the running server's listening sockets and the admin API's.
func (r *runner) handedSockets() ([]handedSocket, []*os.File, error) {
	r.mu.Lock() // not while a reload replaces them
	defer r.mu.Unlock()
	var socks []handedSocket
	var files []*os.File
	add := func(addr string, admin bool, ln net.Listener) error {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("the listener of %s has no descriptor", addr)
		}
		f, err := fl.File()
		if err != nil {
			return fmt.Errorf("the listener of %s: %w", addr, err)
		}
		socks = append(socks, handedSocket{Address: addr, Admin: admin})
		files = append(files, f)
		return nil
	}
	var err error
	for addr, ln := range r.lns {
		if err = add(addr, false, ln); err != nil {
			break
		}
	}
	if err == nil && r.admLn != nil {
		err = add(r.admCfg.Listen, true, r.admLn)
	}
	if err != nil {
		for _, f := range files {
			_ = f.Close()
		}
		return nil, nil, err
	}
	return socks, files, nil
}

// handoverClient is the new process's side of a handover, open until it is ready.
type handoverClient struct {
	c *net.UnixConn
}

// requestHandover asks the gateway serving path for its sockets: the server's by address and
// the admin API's with its address (nil when it hands none).
func requestHandover(path string) (*handoverClient, map[string]net.Listener, net.Listener, string, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("no gateway serves the handover socket %s: %w", path, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(handoverHello)); err != nil {
		_ = c.Close()
		return nil, nil, nil, "", fmt.Errorf("handover: %w", err)
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(handoverMaxFDs*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		_ = c.Close()
		return nil, nil, nil, "", fmt.Errorf("handover: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	if err == nil {
		var socks []handedSocket
		if err = json.Unmarshal(buf[:n], &socks); err == nil && len(socks) != len(fds) {
			err = fmt.Errorf("%d sockets named, %d received", len(socks), len(fds))
		}
		if err == nil {
			lns, admin, lerr := listenersOf(socks, fds)
			if lerr == nil {
				_ = c.SetDeadline(time.Time{})
				var admAddr string
				for _, s := range socks {
					if s.Admin {
						admAddr = s.Address
					}
				}
				return &handoverClient{c: c}, lns, admin, admAddr, nil
			}
			err = lerr
		}
	}
	for _, fd := range fds {
		_ = syscall.Close(fd)
	}
	_ = c.Close()
	return nil, nil, nil, "", fmt.Errorf("handover: %w", err)
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// listenersOf makes listeners of received descriptors (and closes the descriptors: a listener
// holds a duplicate).
func listenersOf(socks []handedSocket, fds []int) (map[string]net.Listener, net.Listener, error) {
	lns := map[string]net.Listener{}
	var admin net.Listener
	var err error
	for i, s := range socks {
		f := os.NewFile(uintptr(fds[i]), s.Address)
		var ln net.Listener
		if err == nil {
			ln, err = net.FileListener(f)
		}
		_ = f.Close()
		switch {
		case err != nil:
		case s.Admin:
			admin = ln
		default:
			lns[s.Address] = ln
		}
	}
	if err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		if admin != nil {
			_ = admin.Close()
		}
		return nil, nil, err
	}
	return lns, admin, nil
}

// ready tells the old process that this one serves: it stops accepting and drains.
func (h *handoverClient) ready() error {
	defer h.c.Close()
	_ = h.c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := h.c.Write([]byte(handoverReady))
	return err
}

// dupListeners duplicates listening sockets by address (a reload's new server serves the same
// sockets as the old one, which closes its own when it stops).
func dupListeners(lns map[string]net.Listener) (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	for addr, ln := range lns {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		var f *os.File
		var err error
		if !ok {
			err = errors.New("no descriptor")
		} else {
			f, err = fl.File()
		}
		if err == nil {
			var d net.Listener
			d, err = net.FileListener(f)
			_ = f.Close()
			out[addr] = d
		}
		if err != nil {
			closeListeners(out)
			return nil, fmt.Errorf("the listener of %s: %w", addr, err)
		}
	}
	return out, nil
}

func closeListeners(lns map[string]net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
