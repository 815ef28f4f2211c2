package interrupt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// guest exercises every way to run on that the checks must stop: loops, exponential recursion
// without a loop, tail calls; beside functions that must keep computing what they did.
const guest = `(module
  (import "env" "g" (global $imported i32))
  (memory (export "memory") 1)
  (global $own (mut i32) (i32.const 7))
  (func (export "own") (result i32) (global.get $own))
  (func (export "imported") (result i32) (global.get $imported))
  (func (export "sum") (param $n i32) (result i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $l
        (br_if $done (i32.gt_u (local.get $i) (local.get $n)))
        (local.set $s (i32.add (local.get $s) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "spin") (loop $l (br $l)))
  (func $tail (export "tail") (param i32) (return_call $tail (i32.add (local.get 0) (i32.const 1))))
  (func (export "simd") (result i32)
    (i32x4.extract_lane 2 (i32x4.add (v128.const i32x4 1 2 3 4) (v128.const i32x4 10 20 30 40))))
  (func (export "bulk") (result i32)
    (memory.fill (i32.const 0) (i32.const 9) (i32.const 16))
    (memory.copy (i32.const 100) (i32.const 0) (i32.const 16))
    (i32.load8_u (i32.const 115))))
`

func wat(t testing.TB, src string) []byte {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatal("wat2wasm (wabt) is needed: apt-get install wabt")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "m.wat")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.wasm")
	if b, err := exec.Command("wat2wasm", "--enable-tail-call", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// instrument assembles the WAT source src and instruments it.
func instrument(t *testing.T, src string) []byte {
	t.Helper()
	bin, err := Instrument(wat(t, src), Options{})
	if err != nil {
		t.Fatalf("instrumenting: %v", err)
	}
	return bin
}

// instantiate instantiates bin in a fresh runtime, beside an "env" module with the global g = 42.
func instantiate(t *testing.T, bin []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := newRuntime(t)
	// The guest imports a global: host modules cannot export one, so a module does.
	env := wat(t, `(module (global (export "g") i32 (i32.const 42)))`)
	if _, err := rt.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatalf("env: %v", err)
	}
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatalf("instantiating the instrumented module: %v", err)
	}
	return mod
}

// newRuntime makes a runtime that accepts tail calls, to test that they can be stopped.
func newRuntime(t testing.TB) wazero.Runtime {
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	t.Cleanup(func() { _ = rt.Close(ctx) })
	return rt
}

func call(t *testing.T, mod api.Module, name string, args ...uint64) uint64 {
	t.Helper()
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(res) == 0 {
		return 0
	}
	return res[0]
}

func TestInstrumentedModuleComputesTheSame(t *testing.T) {
	mod := instantiate(t, instrument(t, guest))
	for _, tc := range []struct {
		fn   string
		arg  []uint64
		want uint64
	}{
		{"own", nil, 7},
		{"imported", nil, 42},
		{"sum", []uint64{100}, 5050},
		{"fib", []uint64{20}, 6765},
		{"simd", nil, 33},
		{"bulk", nil, 9},
	} {
		if got := call(t, mod, tc.fn, tc.arg...); got != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.fn, tc.arg, got, tc.want)
		}
	}
	g, ok := mod.ExportedGlobal(Global).(api.MutableGlobal)
	if !ok {
		t.Fatalf("%s is not exported as a mutable global", Global)
	}
	if g.Type() != api.ValueTypeI32 || g.Get() != 0 {
		t.Errorf("%s: type %v, value %d; want an i32 starting at 0", Global, g.Type(), g.Get())
	}
}

func TestSettingTheGlobalStopsTheGuest(t *testing.T) {
	bin := instrument(t, guest)
	for _, tc := range []struct {
		fn  string
		arg []uint64
	}{
		{"spin", nil},
		{"fib", []uint64{60}}, // about 2^42 calls, no loop
		{"tail", []uint64{0}},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			mod := instantiate(t, bin)
			g := mod.ExportedGlobal(Global).(api.MutableGlobal)
			done := make(chan error, 1)
			go func() {
				_, err := mod.ExportedFunction(tc.fn).Call(context.Background(), tc.arg...)
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("%s returned before it was interrupted: %v", tc.fn, err)
			case <-time.After(20 * time.Millisecond):
			}
			// Compiled code cannot be preempted: a collection stops the world only because the
			// checks call into Go now and then. Without that, this would never return.
			gcDone := make(chan struct{})
			go func() {
				runtime.GC()
				close(gcDone)
			}()
			select {
			case <-gcDone:
			case <-time.After(5 * time.Second):
				t.Fatalf("a collection did not finish within 5s while %s ran", tc.fn)
			}
			g.Set(1)
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "unreachable") {
					t.Errorf("%s stopped with %v, want the unreachable trap", tc.fn, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s did not stop within 5s of the interrupt", tc.fn)
			}
		})
	}
}

func TestStartSectionBecomesAnExport(t *testing.T) {
	src := `(module
  (global $ran (mut i32) (i32.const 0))
  (memory 1)
  (func $start (global.set $ran (i32.const 1)))
  (func (export "ran") (result i32) (global.get $ran))
  (start $start))`
	mod := instantiate(t, instrument(t, src))
	if got := call(t, mod, "ran"); got != 0 {
		t.Fatalf("the start function ran at instantiation")
	}
	call(t, mod, Start)
	if got := call(t, mod, "ran"); got != 1 {
		t.Errorf("after calling %s, ran = %d, want 1", Start, got)
	}
}

func TestNoExportOrGlobalSection(t *testing.T) {
	// Neither section exists: both are created, in the order the format requires.
	mod := instantiate(t, instrument(t, `(module (memory 1) (func (loop (br 0))))`))
	if mod.ExportedGlobal(Global) == nil {
		t.Errorf("no %s export", Global)
	}
}

func TestRefusals(t *testing.T) {
	valid := wat(t, `(module (memory 1) (func (export "f")))`)
	clash := wat(t, `(module (memory 1) (global (export "sluice.interrupt") i32 (i32.const 0)))`)
	for name, tc := range map[string]struct {
		bin  []byte
		want string
	}{
		"empty":      {nil, "not a WebAssembly binary"},
		"component":  {[]byte("\x00asm\x0d\x00\x01\x00"), "version"},
		"truncated":  {valid[:len(valid)-3], "unexpected end"},
		"bad opcode": {patchBody(t, valid, 0xff), "unknown opcode 0xff"},
		"name clash": {clash, `already exports "sluice.interrupt"`},
		"no memory":  {wat(t, `(module (func (export "f")))`), "no memory"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Instrument(tc.bin, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// patchBody replaces the only instruction byte (end) of a module's single empty function body
// with op followed by end.
func patchBody(t *testing.T, bin []byte, op byte) []byte {
	t.Helper()
	// ... 0a (code) 04 (size) 01 (one body) 02 (body size) 00 (no locals) 0b (end)
	i := strings.LastIndex(string(bin), "\x0a\x04\x01\x02\x00\x0b")
	if i < 0 {
		t.Fatal("unexpected layout of the test module")
	}
	out := append([]byte(nil), bin[:i]...)
	return append(out, 0x0a, 0x05, 0x01, 0x03, 0x00, op, 0x0b)
}

func FuzzInstrument(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0a\x04\x01\x02\x00\x0b"))
	// (module (memory 1) (func (loop (br 0))))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x05\x03\x01\x00\x01\x0a\x09\x01\x07\x00\x03\x40\x0c\x00\x0b\x0b"))
	if _, err := Instrument([]byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x05\x03\x01\x00\x01\x0a\x09\x01\x07\x00\x03\x40\x0c\x00\x0b\x0b"), Options{}); err != nil {
		f.Fatalf("the looping seed does not instrument: %v", err)
	}
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, err := Instrument(bin, Options{})
		if err != nil {
			return
		}
		// Instrumenting twice fails on the name clash, never on the structure it wrote.
		if _, err := Instrument(out, Options{}); err == nil || !strings.Contains(err.Error(), "already exports") {
			t.Fatalf("instrumenting the output: %v", err)
		}
	})
}
