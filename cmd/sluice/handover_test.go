package main

import (
	"os"
	"testing"

	"github.com/sluice-gateway/sluice/engine"
)

// TestHandoverPath: the old and the new process of one deployment find the same handover
// socket: named after the first listener's configured address (the bound one for port 0), in
// systemd's RuntimeDirectory before $XDG_RUNTIME_DIR before the temporary directory.
func TestHandoverPath(t *testing.T) {
	spec := &engine.Spec{Server: engine.ServerConfig{Listen: "0.0.0.0:8080"}}
	t.Setenv("RUNTIME_DIRECTORY", "/run/sluice")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := handoverPath(spec, "0.0.0.0:8080"); got != "/run/sluice/sluice-0.0.0.0_8080.sock" {
		t.Errorf("under systemd: %s", got)
	}
	t.Setenv("RUNTIME_DIRECTORY", "")
	if got := handoverPath(spec, ""); got != "/run/user/1000/sluice-0.0.0.0_8080.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	spec.Server.Listen = "[::1]:0"
	if got, want := handoverPath(spec, "[::1]:41234"), os.TempDir()+"/sluice-___1__41234.sock"; got != want {
		t.Errorf("port 0: %s, want %s (the bound port)", got, want)
	}
	spec.Listeners = []engine.ListenerConfig{{Name: "https", Address: ":8443"}, {Name: "http", Address: ":8080"}}
	if got, want := handoverPath(spec, "[::]:8443"), os.TempDir()+"/sluice-_8443.sock"; got != want {
		t.Errorf("listener blocks: %s, want %s (the first listener's configured address)", got, want)
	}
}
