package interrupt

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// depthGuest leaves its functions every way a function can: falling off the end, return, a
// branch to the function's label (br, br_if, br_table), with several results, and by tail call.
const depthGuest = `(module
  (memory (export "memory") 1)
  (func $down (export "down") (param $n i32) (result i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (i32.add (i32.const 1) (call $down (i32.sub (local.get $n) (i32.const 1)))))
  (func (export "brif") (param i32) (result i32)
    (drop (br_if 0 (i32.const 5) (local.get 0)))
    (i32.const 6))
  (func (export "brtable") (param i32) (result i32)
    (drop (block (result i32) (br_table 0 1 (i32.const 7) (local.get 0))))
    (i32.const 8))
  (func $pair (param i32) (result i32 i32)
    (if (local.get 0) (then (return (i32.const 1) (i32.const 2))))
    (br 0 (i32.const 3) (i32.const 4)))
  (func (export "pair") (param i32) (result i32)
    (i32.add (call $pair (local.get 0))))
  (func $count (export "count") (param $n i32) (param $acc i32) (result i32)
    (if (i32.eqz (local.get $n)) (then (return (local.get $acc))))
    (return_call $count (i32.sub (local.get $n) (i32.const 1)) (i32.add (local.get $acc) (i32.const 1)))))
`

func TestCallDepthIsRestoredOnEveryExit(t *testing.T) {
	bin, err := Instrument(wat(t, depthGuest), Options{MaxCallDepth: 100})
	if err != nil {
		t.Fatal(err)
	}
	mod := instantiate(t, bin)
	depth := mod.ExportedGlobal(Depth)
	for _, tc := range []struct {
		fn   string
		args []uint64
		want uint64
	}{
		{"down", []uint64{50}, 50},
		{"brif", []uint64{1}, 5},
		{"brif", []uint64{0}, 6},
		{"brtable", []uint64{0}, 8},
		{"brtable", []uint64{1}, 7},
		{"pair", []uint64{1}, 3},
		{"pair", []uint64{0}, 7},
		// A tail call replaces its frame: 1000 of them stay within a depth of 100.
		{"count", []uint64{1000, 0}, 1000},
	} {
		if got := call(t, mod, tc.fn, tc.args...); got != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.fn, tc.args, got, tc.want)
		}
		if got := depth.Get(); got != 100 {
			t.Fatalf("after %s%v the depth count is %d, want 100 (every call undone)", tc.fn, tc.args, got)
		}
	}
}

func TestCallDepthLimitTraps(t *testing.T) {
	bin, err := Instrument(wat(t, depthGuest), Options{MaxCallDepth: 100})
	if err != nil {
		t.Fatal(err)
	}
	mod := instantiate(t, bin)
	// 99 nested calls of down plus the outer one: exactly the limit.
	if got := call(t, mod, "down", 98); got != 98 {
		t.Fatalf("down(98) = %d", got)
	}
	_, err = mod.ExportedFunction("down").Call(context.Background(), 100)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("down(100) with a limit of 100: %v, want the unreachable trap", err)
	}
	if got := mod.ExportedGlobal(Depth).Get(); got != 0 {
		t.Errorf("after the trap the depth count is %d, want 0 (how the host tells this trap apart)", got)
	}
}

func TestDefaultCallDepth(t *testing.T) {
	mod := instantiate(t, instrument(t, depthGuest))
	if got := call(t, mod, "down", DefaultMaxCallDepth-2); got != DefaultMaxCallDepth-2 {
		t.Fatalf("down(%d) = %d", DefaultMaxCallDepth-2, got)
	}
	if _, err := mod.ExportedFunction("down").Call(context.Background(), 1_000_000); err == nil {
		t.Fatal("a million nested calls did not trap")
	}
	if g := mod.ExportedGlobal(Depth); g.Type() != api.ValueTypeI32 {
		t.Errorf("%s has type %v, want i32", Depth, g.Type())
	}
}
