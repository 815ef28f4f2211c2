package wasm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
)

// The ABIs a guest may speak (Config.ABI).
const (
	abiHTTPWasm  = "http-wasm"
	abiProxyWasm = "proxy-wasm"
)

// proxyWasmMarkers are the exports by which a proxy-wasm module is told: the ABI version export
// every SDK emits, or failing that the callbacks a host calls first.
var proxyWasmMarkers = []string{"proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0", "proxy_on_context_create", "proxy_on_request_headers"}

// detectABI returns the ABI of the module: want if the configuration names one (checked against
// the exports), otherwise the one its exports show. A module that speaks neither is refused with
// one clear sentence saying what it is instead, rather than a list of every missing export.
func detectABI(code wazero.CompiledModule, want string) (string, error) {
	exports := code.ExportedFunctions()
	_, hasReq := exports[exportHandleRequest]
	_, hasResp := exports[exportHandleResponse]
	isHTTP := hasReq || hasResp
	proxyMark := ""
	for _, name := range proxyWasmMarkers {
		if _, ok := exports[name]; ok {
			proxyMark = name
			break
		}
	}
	switch {
	case want == abiProxyWasm:
		if _, ok := exports["proxy_on_context_create"]; !ok {
			return "", fmt.Errorf(`abi = "proxy-wasm", but the module does not export proxy_on_context_create (every proxy-wasm module does)%s`, whatItIs(code, isHTTP))
		}
		return abiProxyWasm, nil
	case want == abiHTTPWasm:
		if !isHTTP {
			return "", fmt.Errorf(`abi = "http-wasm", but the module exports neither handle_request nor handle_response%s`, whatItIs(code, false))
		}
		return abiHTTPWasm, nil
	case proxyMark != "" && !isHTTP:
		return abiProxyWasm, nil
	case isHTTP:
		return abiHTTPWasm, nil
	}
	return "", fmt.Errorf("the module speaks neither ABI the wasm filter runs%s", whatItIs(code, false))
}

// whatItIs describes a module that is not what was expected from its exports and imports.
func whatItIs(code wazero.CompiledModule, isHTTP bool) string {
	const runs = "Sluice runs http-wasm guests (exporting handle_request and handle_response) and proxy-wasm guests (exporting proxy_abi_version_0_2_0 or _0_2_1 and the proxy_on_* callbacks)"
	exports := code.ExportedFunctions()
	if isHTTP {
		return fmt.Sprintf(": it is an http-wasm module (exports %s)", exportHandleRequest)
	}
	for _, fn := range code.ImportedFunctions() {
		if mod, name, _ := fn.Import(); strings.HasPrefix(name, "proxy_") && mod == "env" {
			return fmt.Sprintf(": it imports %s.%s like a proxy-wasm module but exports none of %s; %s", mod, name, strings.Join(proxyWasmMarkers, ", "), runs)
		}
	}
	if len(exports) == 0 {
		return "; the module exports no functions, so there is nothing to call; " + runs
	}
	if _, ok := exports[exportStart]; ok {
		return "; it is a WASI command (exports _start without a request handler): a program to run, not a filter; " + runs
	}
	names := make([]string, 0, len(exports))
	for name := range exports {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return fmt.Sprintf(" (its functions: %s); %s", strings.Join(names, ", "), runs)
}
