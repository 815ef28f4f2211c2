package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/valyala/fasthttp"
)

// sluiceBin is the CLI built once for these tests.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-cli")
	if err != nil {
		panic(err)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	// Every gateway a test starts serves its handover socket there (handoverPath), removed with dir.
	_ = os.Setenv("XDG_RUNTIME_DIR", dir)
	out, err := exec.Command("go", "build", "-o", sluiceBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building sluice: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gateway.hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeMinimalConfig writes the smallest configuration `sluice run` serves: a server on a free
// port, no admin API, and one pipeline to an upstream that is never reached (127.0.0.1:9).
func writeMinimalConfig(t *testing.T) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`server { listen = %q }
admin { listen = "" }
upstream "u" {
  target { address = "127.0.0.1:9" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, freePort(t)))
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestValidateReportsEveryErrorWithLocation(t *testing.T) {
	path := writeConfig(t, `server {
  read_timeout = "soon"
}
upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  filter "jtw" {}
  balancer { upstream = upstream.nope }
}
`)
	cmd := exec.Command(sluiceBin, "validate", "-c", path)
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{
		filepath.Base(path) + ":2:18: error: Invalid value", `"soon" is not a duration`,
		":8:10: error: Unknown filter kind \"jtw\"", `Did you mean "jwt"?`,
		":9:25: error: Reference to undeclared upstream", "^^^^^^^^^^^^^",
		"3 error(s)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateAcceptsGoodConfig(t *testing.T) {
	path := writeConfig(t, `upstream "u" {
  target { address = "127.0.0.1:9001" }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`)
	out, err := exec.Command(sluiceBin, "validate", "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("validate failed: %v\n%s", err, out)
	}
}

func TestFmt(t *testing.T) {
	ugly := "pipeline \"p\" {\nbalancer { upstream = upstream.u }\n  strip_prefix=\"/v1\"\n}\n"
	path := writeConfig(t, ugly)
	out, err := exec.Command(sluiceBin, "fmt", "-check", path).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), path) {
		t.Fatalf("fmt -check on an unformatted file: exit %d, output %q; want exit 1 naming the file", exitCode(err), out)
	}
	if out, err := exec.Command(sluiceBin, "fmt", path).CombinedOutput(); err != nil {
		t.Fatalf("fmt: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "  strip_prefix = \"/v1\"") {
		t.Errorf("fmt did not align the file:\n%s", got)
	}
	if out, err := exec.Command(sluiceBin, "fmt", "-check", path).CombinedOutput(); err != nil {
		t.Errorf("fmt -check after fmt: %v\n%s", err, out)
	}
	bad := writeConfig(t, "pipeline {{\n")
	if _, err := exec.Command(sluiceBin, "fmt", bad).CombinedOutput(); exitCode(err) != 1 {
		t.Errorf("fmt on unparseable input: exit %d, want 1", exitCode(err))
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// startSluice runs `sluice run` and waits until it serves.
func startSluice(t *testing.T, config string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	return startSluiceEnv(t, nil, config, args...)
}

// startSluiceEnv is startSluice with env added to the environment.
func startSluiceEnv(t *testing.T, env []string, config string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	return startSluiceCmd(t, env, append([]string{"run", "-c", config}, args...)...)
}

// startSluiceCmd runs sluice with args (a run command, however it names its file) and waits
// until it serves.
func startSluiceCmd(t *testing.T, env []string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &strings.Builder{}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "msg=serving") {
				once = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	select {
	case <-ready:
	case <-done:
		t.Fatalf("sluice exited before serving:\n%s", logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("sluice did not start:\n%s", logs.String())
	}
	return cmd, logs
}

// TestRunKeepsSysmonAwake checks that `sluice run` re-executes itself with schedtrace added to
// GODEBUG (see sysmon.go), keeping the user's other settings, and that a GODEBUG which sets
// schedtrace itself is left as it is.
func TestRunKeepsSysmonAwake(t *testing.T) {
	cfg := writeMinimalConfig(t)
	t.Setenv("GODEBUG", "") // restored after the test; the test's own would be inherited
	os.Unsetenv("GODEBUG")
	for _, tc := range []struct{ set, want string }{
		{"", "GODEBUG=" + sysmonGodebug},
		{"GODEBUG=http2client=0", "GODEBUG=http2client=0," + sysmonGodebug},
		{"GODEBUG=schedtrace=0", "GODEBUG=schedtrace=0"},
	} {
		cmd, _ := startSluiceEnv(t, []string{tc.set}, cfg)
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range strings.Split(string(env), "\x00") {
			if strings.HasPrefix(kv, "GODEBUG=") {
				got = append(got, kv)
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("started with %q: the serving process has %q, want [%s]", tc.set, got, tc.want)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	arrived := make(chan struct{}, 1)
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		arrived <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		c.SetBodyString("slow answer")
	})
	listen := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`server { listen = %q }
admin { listen = "" }
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  balancer { upstream = upstream.u }
}
`, listen, up))
	cmd, logs := startSluice(t, cfg)
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	// Stop the gateway while the request is in flight (it has reached the upstream).
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.body != "slow answer" {
		t.Errorf("in-flight request got %q, %v; want the full answer", r.body, r.err)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("sluice exited with %v, want 0\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sluice did not exit after SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		t.Error("the listener still accepts after shutdown")
	}
}
