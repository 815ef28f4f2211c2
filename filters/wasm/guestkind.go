package wasm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
)

// notHTTPWasm explains, for a module that exports neither handle_request nor handle_response,
// what it is instead when that can be told from its exports and imports: one clear sentence
// rather than a list of every missing export and unknown import.
func notHTTPWasm(code wazero.CompiledModule) error {
	exports := code.ExportedFunctions()
	if _, ok := exports[exportHandleRequest]; ok {
		return nil
	}
	if _, ok := exports[exportHandleResponse]; ok {
		return nil
	}
	const runs = "Sluice's wasm filter runs http-wasm guests, which export handle_request and handle_response"
	for _, name := range []string{"proxy_on_request_headers", "proxy_on_http_request_headers", "proxy_on_context_create", "proxy_on_vm_start"} {
		if _, ok := exports[name]; ok {
			return fmt.Errorf("this is a proxy-wasm module (exports %s); %s", name, runs)
		}
	}
	for _, fn := range code.ImportedFunctions() {
		if mod, name, _ := fn.Import(); strings.HasPrefix(name, "proxy_") && mod == "env" {
			return fmt.Errorf("this looks like a proxy-wasm module (imports %s.%s); %s", mod, name, runs)
		}
	}
	if len(exports) == 0 {
		return fmt.Errorf("the module exports no functions, so there is nothing to call; %s", runs)
	}
	if _, ok := exports[exportStart]; ok {
		return fmt.Errorf("this is a WASI command (exports _start) without handle_request: a program to run, not a request handler; %s", runs)
	}
	names := make([]string, 0, len(exports))
	for name := range exports {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return fmt.Errorf("the module exports no http-wasm handler (its functions: %s); %s", strings.Join(names, ", "), runs)
}
