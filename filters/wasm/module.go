package wasm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Guest exports of the http-wasm handler ABI.
const (
	exportMemory         = "memory"
	exportHandleRequest  = "handle_request"
	exportHandleResponse = "handle_response"
	exportInitialize     = "_initialize"
	exportStart          = "_start"
	hostModuleName       = "http_handler"
)

// compilationCache is shared by every runtime of the process. wazero keys the machine code it
// holds by the module's content hash (sha256 of the bytes, the instrumented ones for a filter
// with a timeout) and reference-counts it: each CompiledModule.Close drops one reference and
// the code is freed when the last user is gone. A reload builds the new configuration before
// closing the old one, so an unchanged module is found in the cache instead of being compiled
// again; codes (cache.go) keeps recently used modules that no filter uses any more.
var compilationCache = sync.OnceValue(wazero.NewCompilationCache)

// newRuntime makes the runtime of one filter: the memory cap is a runtime setting, so each
// filter has its own (sharing the process-wide compilation cache). Close-on-context-done is on
// only for a module the interrupt package could not instrument (closeOnDone): it starts a
// goroutine per call, where the interrupt checks cost nothing per call.
func newRuntime(ctx context.Context, memoryLimit int64, closeOnDone bool) wazero.Runtime {
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(compilationCache()).
		WithMemoryLimitPages(uint32(memoryLimit / pageSize)).
		WithCloseOnContextDone(closeOnDone).
		// DWARF of a Go guest is large; function names from the name section suffice in traps.
		WithDebugInfoEnabled(false)
	return wazero.NewRuntimeWithConfig(ctx, cfg)
}

// compile compiles the guest and instantiates the host modules it imports, checking that it has
// what the ABI requires and imports nothing the host lacks. It returns the start function to run
// ("" if none) and the ABI it speaks (abi names the one the configuration asks for, "" to detect
// it from the exports). Every problem is reported, each naming the missing or mismatched piece.
func compile(ctx context.Context, rt wazero.Runtime, bin []byte, abi string) (wazero.CompiledModule, string, string, error) {
	code, err := codes.compile(ctx, rt, bin)
	if err != nil {
		return nil, "", "", fmt.Errorf("not a valid WebAssembly module: %w", err)
	}
	fail := func(err error) (wazero.CompiledModule, string, string, error) {
		_ = codes.release(code, false)
		return nil, "", "", err
	}
	if abi, err = detectABI(code, abi); err != nil {
		return fail(err)
	}
	if abi == abiProxyWasm {
		start, err := checkProxyWasm(ctx, rt, code)
		if err != nil {
			return fail(err)
		}
		return code, start, abi, nil
	}
	var errs []error
	exports := code.ExportedFunctions()
	if _, ok := code.ExportedMemories()[exportMemory]; !ok {
		errs = append(errs, errors.New(`does not export its memory as "memory" (the http-wasm ABI reads and writes guest memory)`))
	}
	errs = append(errs, checkExport(exports, exportHandleRequest, nil, []api.ValueType{api.ValueTypeI64}))
	errs = append(errs, checkExport(exports, exportHandleResponse, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil))
	start := ""
	for _, name := range []string{exportInitialize, exportStart} {
		if _, ok := exports[name]; ok {
			start = name
			errs = append(errs, checkExport(exports, name, nil, nil))
			break
		}
	}
	for _, m := range code.ImportedMemories() {
		mod, name, _ := m.Import()
		errs = append(errs, fmt.Errorf("imports memory %s.%s, but the host offers none: the guest must define and export its own memory", mod, name))
	}

	needWASI, needHost := false, false
	for _, fn := range code.ImportedFunctions() {
		mod, _, _ := fn.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
			needWASI = true
		case hostModuleName:
			needHost = true
		}
	}
	if needWASI && rt.Module(wasi_snapshot_preview1.ModuleName) == nil {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			return fail(fmt.Errorf("instantiating WASI: %w", err))
		}
	}
	if needHost && rt.Module(hostModuleName) == nil {
		if err := instantiateHost(ctx, rt); err != nil {
			return fail(fmt.Errorf("instantiating the http_handler host module: %w", err))
		}
	}
	for _, fn := range code.ImportedFunctions() {
		errs = append(errs, checkImport(rt, fn))
	}
	if err := joinProblems(errs); err != nil {
		return fail(err)
	}
	return code, start, abi, nil
}

// joinProblems makes one error of several, on one line so it reads well as a diagnostic.
func joinProblems(errs []error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		return errors.New(msgs[0])
	}
	return fmt.Errorf("%d problems: %s", len(msgs), strings.Join(msgs, "; "))
}

func checkExport(exports map[string]api.FunctionDefinition, name string, params, results []api.ValueType) error {
	fn, ok := exports[name]
	if !ok {
		return fmt.Errorf("does not export function %s%s (required by the http-wasm handler ABI)", name, signature(params, results))
	}
	if !slices.Equal(fn.ParamTypes(), params) || !slices.Equal(fn.ResultTypes(), results) {
		return fmt.Errorf("exports %s%s, want %s%s", name, signature(fn.ParamTypes(), fn.ResultTypes()), name, signature(params, results))
	}
	return nil
}

func checkImport(rt wazero.Runtime, fn api.FunctionDefinition) error {
	mod, name, _ := fn.Import()
	var have api.FunctionDefinition
	switch mod {
	case hostModuleName, wasi_snapshot_preview1.ModuleName:
		if m := rt.Module(mod); m != nil {
			have = m.ExportedFunctionDefinitions()[name]
		}
	default:
		return fmt.Errorf("imports %s.%s, but the host offers only the %s and %s modules",
			mod, name, hostModuleName, wasi_snapshot_preview1.ModuleName)
	}
	if have == nil {
		if mod == hostModuleName {
			if near := nearest(name, hostFunctionNames()); near != "" {
				return fmt.Errorf("imports %s.%s, which is not an http-wasm host function (did you mean %s?)", mod, name, near)
			}
			return fmt.Errorf("imports %s.%s, which is not an http-wasm host function (the ABI has %s)",
				mod, name, strings.Join(hostFunctionNames(), ", "))
		}
		return fmt.Errorf("imports %s.%s, which is not a WASI preview1 function", mod, name)
	}
	if !slices.Equal(fn.ParamTypes(), have.ParamTypes()) || !slices.Equal(fn.ResultTypes(), have.ResultTypes()) {
		return fmt.Errorf("imports %s.%s as %s, but the host defines it as %s", mod, name,
			signature(fn.ParamTypes(), fn.ResultTypes()), signature(have.ParamTypes(), have.ResultTypes()))
	}
	return nil
}

// signature formats a function type the way WAT readers expect: "(i32, i32) -> i64".
func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	out := "(" + names(params) + ") -> "
	if len(results) == 1 {
		return out + names(results)
	}
	return out + "(" + names(results) + ")"
}

// nearest returns the candidate closest to name by edit distance, if it is close enough to be a
// likely typo.
func nearest(name string, candidates []string) string {
	best, bestD := "", len(name)/3+1
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
