package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/configsource"
	"github.com/sluice-gateway/sluice/testbed/etcdtest"
	"github.com/sluice-gateway/sluice/testbed/gatewaytest"
	"github.com/sluice-gateway/sluice/testbed/upstream"
)

// fleetConfig is one configuration for every instance: each reads its addresses from its own
// environment.
func fleetConfig(up, marker string) string {
	return fmt.Sprintf(`server { listen = env("GW_LISTEN") }
admin { listen = env("GW_ADMIN") }
upstream "u" {
  target { address = %q }
}
pipeline "p" {
  filter "headers" {
    response_set = { "X-Config" = %q }
  }
  balancer { upstream = upstream.u }
}
`, up, marker)
}

type instance struct {
	name, listen, admin string
}

// startFleetInstances starts n `sluice run` processes with bootstrap files naming etcd.
func startFleetInstances(t *testing.T, endpoint string, n int) []instance {
	t.Helper()
	var out []instance
	for i := range n {
		in := instance{name: fmt.Sprintf("gw-%d", i+1), listen: freePort(t), admin: freePort(t)}
		boot := filepath.Join(t.TempDir(), "bootstrap.hcl")
		src := fmt.Sprintf(`config_source "etcd" {
  endpoints     = [%q]
  prefix        = "/fleet"
  instance_id   = %q
  state_dir     = %q
  start_timeout = "3s"
  status_ttl    = "3s"
}
`, endpoint, in.name, t.TempDir())
		if err := os.WriteFile(boot, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		startSluiceEnv(t, []string{"GW_LISTEN=" + in.listen, "GW_ADMIN=" + in.admin}, boot)
		out = append(out, in)
	}
	return out
}

// push runs `sluice push` on a configuration folder.
func push(t *testing.T, endpoint, cfg string, args ...string) string {
	t.Helper()
	cmd := exec.Command(sluiceBin, append([]string{"push", "-c", cfg, "--etcd", endpoint, "--prefix", "/fleet"}, args...)...)
	// Validation runs where the push runs: it needs the variables the configuration reads.
	cmd.Env = append(os.Environ(), "GW_LISTEN=127.0.0.1:1", "GW_ADMIN=127.0.0.1:2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice push: %v\n%s", err, out)
	}
	return string(out)
}

func readyz(t *testing.T, admin string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFleetFromEtcd: three instances take their configuration from one etcd. A change reaches
// all three within a second under load with no failed request; a change that does not validate is
// refused by each, which says so in /readyz and its status key, and the last good one keeps
// serving; with etcd stopped they keep serving, and after it is back a new change arrives.
func TestFleetFromEtcd(t *testing.T) {
	et := etcdtest.Start(t)
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, []byte(fleetConfig(up, "A")), 0o644); err != nil {
		t.Fatal(err)
	}
	push(t, et.Endpoint, cfg)
	fleet := startFleetInstances(t, et.Endpoint, 3)
	for _, in := range fleet {
		if m := configMarker(t, "http://"+in.listen+"/x"); m != "A" {
			t.Fatalf("%s serves X-Config %q, want A", in.name, m)
		}
	}

	// Load on every instance; each client notes when its instance first answered with a marker.
	var okN, failed atomic.Int64
	var mu sync.Mutex
	firstSeen := map[string]map[string]time.Time{} // marker -> instance -> time
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, in := range fleet {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := client.Get("http://" + in.listen + "/x")
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
						mu.Lock()
						errs = append(errs, resp.Status)
						mu.Unlock()
						continue
					}
					okN.Add(1)
					m := resp.Header.Get("X-Config")
					now := time.Now()
					mu.Lock()
					if firstSeen[m] == nil {
						firstSeen[m] = map[string]time.Time{}
					}
					if _, seen := firstSeen[m][in.name]; !seen {
						firstSeen[m][in.name] = now
					}
					mu.Unlock()
				}
			}()
		}
	}
	// waitMarker waits until every instance served marker; it returns the latest first-seen time.
	waitMarker := func(marker string, within time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			mu.Lock()
			seen := firstSeen[marker]
			n := len(seen)
			var last time.Time
			for _, ts := range seen {
				if ts.After(last) {
					last = ts
				}
			}
			mu.Unlock()
			if n == len(fleet) {
				return last
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v only %d of %d instances serve %q", within, n, len(fleet), marker)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond) // load running before the change

	src, err := configsource.NewEtcd(pushConfig(et.Endpoint), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pushBundle := func(src *configsource.Etcd, text string) *configsource.Bundle {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		b, _, err := configsource.FromDisk(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := src.Push(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b
	}

	// A good change, timed from before the push.
	t0 := time.Now()
	pushBundle(src, fleetConfig(up, "B"))
	took := waitMarker("B", 5*time.Second).Sub(t0)
	t.Logf("the change reached all %d instances in %v", len(fleet), took)
	if took > time.Second {
		t.Errorf("the change took %v to reach every instance, want ≤ 1s", took)
	}

	// A change that does not validate (written past `sluice push`, which would have refused it).
	bad := pushBundle(src, strings.Replace(fleetConfig(up, "C"), `filter "headers"`, `filter "headerz"`, 1))
	deadline := time.Now().Add(5 * time.Second)
	for _, in := range fleet {
		for {
			cs, _ := readyz(t, in.admin)["config_source"].(map[string]any)
			if cs != nil && cs["refused"] == bad.ID {
				if !strings.Contains(fmt.Sprint(cs["error"]), `Unknown filter kind "headerz"`) {
					t.Errorf("%s /readyz error %q does not name the problem", in.name, cs["error"])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not report the refused configuration in /readyz: %v", in.name, cs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	sts, err := src.Statuses(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range fleet {
		if s := sts[in.name]; s.Refused != bad.ID || !strings.Contains(s.Error, "headerz") {
			t.Errorf("status key of %s: %+v, want the refusal of %s", in.name, s, bad.ID[:12])
		}
	}
	for _, in := range fleet {
		if m := configMarker(t, "http://"+in.listen+"/x"); m != "B" {
			t.Errorf("%s serves %q after the refused change, want B", in.name, m)
		}
	}

	// etcd away: serving goes on with the last good configuration.
	et.Stop()
	before := okN.Load()
	deadline = time.Now().Add(10 * time.Second)
	for _, in := range fleet {
		for {
			cs, _ := readyz(t, in.admin)["config_source"].(map[string]any)
			if cs != nil && cs["etcd_connected"] == false {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s /readyz does not say etcd is unreachable: %v", in.name, cs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if okN.Load()-before < 10 {
		t.Errorf("only %d requests served while etcd was away", okN.Load()-before)
	}
	et.Restart()
	src2, err := configsource.NewEtcd(pushConfig(et.Endpoint), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	pushBundle(src2, fleetConfig(up, "D"))
	waitMarker("D", 15*time.Second)

	close(stop)
	wg.Wait()
	t.Logf("%d requests under load, %d failed %v", okN.Load()+failed.Load(), failed.Load(), errs[:min(len(errs), 3)])
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
}

func pushConfig(endpoint string) *configsource.EtcdConfig {
	c := &configsource.EtcdConfig{}
	c.SetDefaults()
	c.Endpoints, c.Prefix = []string{endpoint}, "/fleet"
	return c
}

// TestPushLargeModule: `sluice push` carries a 4 MB Wasm module (chunked: etcd refuses values
// over 1.5 MiB) and the instance runs it; an instance restarted while etcd is down starts from
// the last good configuration it kept.
func TestPushLargeModule(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	et := etcdtest.Start(t)
	up := gatewaytest.Upstream(t, upstream.New(upstream.Options{Name: "u"}).Handle)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "filters"), 0o755); err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "filters", "sec.wasm")
	if out, err := exec.Command(wat2wasm, "../../examples/filters/wat/secheaders.wat", "-o", mod).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	// Padded to 4 MB with a custom section (guests ignore it), as big as a Go guest and more.
	wasm, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, 4<<20)
	for i := range pad {
		pad[i] = byte(i * 7919 >> 3)
	}
	section := append([]byte{4}, "pad_"...) // name length, name
	section = append(section, pad...)
	wasm = append(wasm, 0) // custom section id
	for n := len(section); ; n >>= 7 {
		if n < 0x80 {
			wasm = append(wasm, byte(n))
			break
		}
		wasm = append(wasm, byte(n&0x7f|0x80))
	}
	wasm = append(wasm, section...)
	if err := os.WriteFile(mod, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, []byte(strings.Replace(fleetConfig(up, "wasm"), `  balancer`, `  filter "wasm" {
    module = "filters/sec.wasm"
  }
  balancer`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := push(t, et.Endpoint, cfg)
	if !strings.Contains(out, "2 file(s)") {
		t.Errorf("push printed %q, want the configuration and its module", out)
	}

	listen, admin, state := freePort(t), freePort(t), t.TempDir()
	boot := filepath.Join(t.TempDir(), "bootstrap.hcl")
	if err := os.WriteFile(boot, []byte(fmt.Sprintf(`config_source "etcd" {
  endpoints     = [%q]
  prefix        = "/fleet"
  state_dir     = %q
  start_timeout = "2s"
}
`, et.Endpoint, state)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"GW_LISTEN=" + listen, "GW_ADMIN=" + admin}
	check := func(who string) {
		t.Helper()
		resp, err := http.Get("http://" + listen + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Config") != "wasm" {
			t.Errorf("%s: the pushed module did not run: headers %v", who, resp.Header)
		}
	}
	cmd, _ := startSluiceEnv(t, env, boot)
	check("from etcd")
	// push --wait reports each instance's answer from its status key.
	host, _ := os.Hostname()
	if err := os.WriteFile(cfg, []byte(strings.Replace(fleetConfig(up, "wasm"), `  balancer`, `  filter "wasm" {
    module = "filters/sec.wasm"
  }
  filter "headers" {
    response_set = { "X-Pushed" = "2" }
  }
  balancer`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := push(t, et.Endpoint, cfg, "--wait", "10s"); !strings.Contains(out, host+": serving") {
		t.Errorf("push --wait printed %q, want %q", out, host+": serving")
	}
	if resp, err := http.Get("http://" + listen + "/x"); err != nil || resp.Header.Get("X-Pushed") != "2" {
		t.Errorf("after push --wait the instance does not serve the new configuration (%v)", err)
	} else {
		resp.Body.Close()
	}
	_ = cmd.Process.Kill()
	_, _ = cmd.Process.Wait()

	et.Stop()
	startSluiceEnv(t, env, boot)
	check("restarted without etcd")
}

// TestBootstrapValidation: a bootstrap file holds the config_source block alone, and its
// mistakes are diagnostics with locations, from validate and run alike; push refuses a
// configuration that does not validate and writes nothing.
func TestBootstrapValidation(t *testing.T) {
	good := writeConfig(t, `config_source "etcd" {
  endpoints = ["http://127.0.0.1:2379"]
  prefix    = "/sluice/prod"
}
`)
	sluice := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, sluiceBin, args...).CombinedOutput()
		return exitCode(err), string(out)
	}
	if code, out := sluice("validate", "-c", good); code != 0 || !strings.Contains(out, "bootstrap file is valid") {
		t.Errorf("validate of a good bootstrap file: exit %d\n%s", code, out)
	}
	bad := writeConfig(t, `config_source "etcd" {
  endpoints = []
  prefix    = "sluice/"
  password  = "hunter2"
}
server { listen = "127.0.0.1:1" }
`)
	for _, cmd := range []string{"validate", "run"} {
		code, out := sluice(cmd, "-c", bad)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s", cmd, code, out)
		}
		for _, want := range []string{":2:15: error:", "endpoints", ":3:15: error:", "prefix", "Needs a username", ":6:1: error: Unsupported block type", "bootstrap file"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", cmd, want, out)
			}
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s printed the etcd password:\n%s", cmd, out)
		}
	}

	et := etcdtest.Start(t)
	cfg := writeConfig(t, `pipeline "p" {
  filter "headerz" {}
}
`)
	out, err := exec.Command(sluiceBin, "push", "-c", cfg, "--etcd", et.Endpoint, "--prefix", "/fleet").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), `Unknown filter kind "headerz"`) || !strings.Contains(string(out), "nothing pushed") {
		t.Errorf("push of a bad configuration: exit %d\n%s", exitCode(err), out)
	}
	src, err := configsource.NewEtcd(pushConfig(et.Endpoint), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if b, err := src.Current(t.Context()); err != nil || b != nil {
		t.Errorf("after a refused push etcd holds %v (%v), want nothing", b, err)
	}
}
