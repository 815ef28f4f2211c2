package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine/enginetest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
	"github.com/valyala/fasthttp"
)

func gatewayConfig(listen, admin, up, marker string) string {
	return fmt.Sprintf(`server { listen = %q }
admin { listen = %q }
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    response_set = { "X-Config" = %q }
  }
  balancer { upstream = upstream.u }
}
`, listen, admin, up, marker)
}

func configMarker(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Config")
}

func TestReloadThroughAdminAndSIGHUP(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen, adminAddr := freePort(t), freePort(t)
	path := writeConfig(t, gatewayConfig(listen, adminAddr, up, "A"))
	cmd, logs := startSluice(t, path)
	url := "http://" + listen + "/x"
	if m := configMarker(t, url); m != "A" {
		t.Fatalf("X-Config = %q, want A", m)
	}

	// A good configuration through POST /reload.
	if err := os.WriteFile(path, []byte(gatewayConfig(listen, adminAddr, up, "B")), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+adminAddr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /reload: %d", resp.StatusCode)
	}
	if m := configMarker(t, url); m != "B" {
		t.Fatalf("after reload X-Config = %q, want B", m)
	}

	// A broken one: the running configuration stays and the diagnostics come back.
	if err := os.WriteFile(path, []byte(strings.Replace(gatewayConfig(listen, adminAddr, up, "C"), `filter "headers"`, `filter "headerz"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post("http://"+adminAddr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Reloaded    bool   `json:"reloaded"`
		Diagnostics string `json:"diagnostics"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 422 || body.Reloaded || !strings.Contains(body.Diagnostics, `gateway.hcl:7:10: error: Unknown filter kind "headerz"`) {
		t.Errorf("broken reload: status %d, body %+v; want 422 with the diagnostic", resp.StatusCode, body)
	}
	if m := configMarker(t, url); m != "B" {
		t.Errorf("after a broken reload X-Config = %q, want B (unchanged)", m)
	}

	// SIGHUP reloads too.
	if err := os.WriteFile(path, []byte(gatewayConfig(listen, adminAddr, up, "D")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for configMarker(t, url) != "D" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBinaryUpgrade starts a second gateway process on the same port (--takeover: SO_REUSEPORT),
// stops the first, and counts what clients under load saw.
func TestBinaryUpgrade(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	oldCmd, _ := startSluice(t, writeConfig(t, gatewayConfig(listen, "", up, "old")))

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for n := 0; n < 100000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + listen + "/x")
				if err != nil {
					failed.Add(1)
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	newCmd, _ := startSluice(t, writeConfig(t, gatewayConfig(listen, "", up, "new")), "--takeover")
	time.Sleep(300 * time.Millisecond) // both processes accept for a while
	if err := oldCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = oldCmd.Wait()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	total := ok.Load() + failed.Load()
	t.Logf("binary upgrade under load: %d requests, %d failed %v", total, failed.Load(), errs[:min(len(errs), 3)])
	// Linux resets connections still queued on the closing listener; the rate must stay tiny.
	if failed.Load()*1000 > total {
		t.Errorf("%d of %d requests failed across the upgrade (more than 0.1%%)", failed.Load(), total)
	}
	if m := configMarker(t, "http://"+listen+"/x"); m != "new" {
		t.Errorf("after the upgrade X-Config = %q, want new", m)
	}
	_ = newCmd.Process.Signal(syscall.SIGTERM)
}

// TestSurvivesDescriptorExhaustion runs the gateway with a low open-file limit, exhausts it with
// idle connections, and checks it serves again once they close instead of having stopped.
func TestSurvivesDescriptorExhaustion(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	cfg := writeConfig(t, gatewayConfig(listen, "", up, "fd"))
	cmd := exec.Command("bash", "-c", `ulimit -n 48 && exec "$0" run -c "$1"`, sluiceBin, cfg)
	stderr := &enginetest.LogBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + listen + "/x"
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var conns []net.Conn
	for i := 0; i < 80; i++ {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(300 * time.Millisecond) // let the gateway hit EMFILE while accepting them
	for _, c := range conns {
		c.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway no longer serves after descriptor exhaustion: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "cannot accept a connection") {
		t.Errorf("the gateway never ran out of descriptors (test setup too lax?):\n%s", stderr.String())
	}
}

func TestWatchReloadsOnFileChange(t *testing.T) {
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	listen := freePort(t)
	path := writeConfig(t, gatewayConfig(listen, "", up, "before"))
	startSluice(t, path, "--watch")
	url := "http://" + listen + "/x"
	if m := configMarker(t, url); m != "before" {
		t.Fatalf("X-Config = %q", m)
	}
	// Make sure the modification time moves even on coarse file systems.
	later := time.Now().Add(2 * time.Second)
	if err := os.WriteFile(path, []byte(gatewayConfig(listen, "", up, "after")), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(path, later, later)
	deadline := time.Now().Add(10 * time.Second)
	for configMarker(t, url) != "after" {
		if time.Now().After(deadline) {
			t.Fatal("--watch did not reload the changed file")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadMovesListener changes the server's listen address on reload: the new address serves
// at once, a request in flight on the old one completes, then the old address stops accepting.
func TestReloadMovesListener(t *testing.T) {
	arrived := make(chan struct{}, 1)
	up := gatewaytest.Upstream(t, func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/slow" {
			arrived <- struct{}{}
			time.Sleep(500 * time.Millisecond)
		}
		c.SetBodyString("done")
	})
	oldAddr, newAddr, adminAddr := freePort(t), freePort(t), freePort(t)
	path := writeConfig(t, gatewayConfig(oldAddr, adminAddr, up, "old"))
	startSluice(t, path)

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + oldAddr + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-arrived
	if err := os.WriteFile(path, []byte(gatewayConfig(newAddr, adminAddr, up, "new")), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+adminAddr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	if m := configMarker(t, "http://"+newAddr+"/x"); m != "new" {
		t.Errorf("new address answers X-Config %q, want new", m)
	}
	if got := <-slow; got != "done" {
		t.Errorf("request in flight on the old address got %q, want done", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", oldAddr, 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the old address still accepts after the reload")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
