package interrupt

import (
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// TestExportGlobals: the mutable globals (after an imported one, so indices are offset) are
// exported under the reserved names in order, can be read and written through them, and the
// module still runs.
func TestExportGlobals(t *testing.T) {
	bin, n, err := ExportGlobals(wat(t, `(module
  (import "env" "g" (global $imported i32))
  (memory (export "memory") 1)
  (global $const i32 (i32.const 1))
  (global $a (mut i32) (i32.const 7))
  (global $b (mut i64) (i64.const -3))
  (func (export "bump") (global.set $a (i32.add (global.get $a) (global.get $const)))
                        (global.set $b (i64.add (global.get $b) (i64.const 1))))
  (func (export "a") (result i32) (global.get $a)))`))
	if err != nil || n != 2 {
		t.Fatalf("ExportGlobals: n %d, err %v; want 2, nil", n, err)
	}
	mod := instantiate(t, bin)
	a, ok := mod.ExportedGlobal(GlobalPrefix + "0").(api.MutableGlobal)
	b, okb := mod.ExportedGlobal(GlobalPrefix + "1").(api.MutableGlobal)
	if !ok || !okb {
		t.Fatal("the mutable globals are not exported as mutable")
	}
	if _, err := mod.ExportedFunction("bump").Call(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a.Get() != 8 || int64(b.Get()) != -2 {
		t.Errorf("after bump: a %d, b %d; want 8, -2", a.Get(), int64(b.Get()))
	}
	a.Set(7)
	if r, _ := mod.ExportedFunction("a").Call(t.Context()); r[0] != 7 {
		t.Errorf("the guest reads %d after Set(7)", r[0])
	}
}

// TestExportGlobalsRefusesTableWrites: each table-changing instruction is refused by name.
func TestExportGlobalsRefusesTableWrites(t *testing.T) {
	for op, body := range map[string]string{
		"table.set":  `(table.set $t (i32.const 0) (ref.null func))`,
		"table.grow": `(drop (table.grow $t (ref.null func) (i32.const 1)))`,
		"table.fill": `(table.fill $t (i32.const 0) (ref.null func) (i32.const 1))`,
		"table.copy": `(table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1))`,
		"table.init": `(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))`,
		"elem.drop":  `(elem.drop $e)`,
	} {
		src := `(module (memory 1) (table $t 2 funcref) (elem $e func $f) (func $f)
  (func (export "run") ` + body + `))`
		if _, _, err := ExportGlobals(wat(t, src)); err == nil || !strings.Contains(err.Error(), op) {
			t.Errorf("%s: err %v, want a refusal naming it", op, err)
		}
	}
	// Reading a table and calling through it change nothing: accepted.
	src := `(module (memory 1) (table $t 2 funcref) (elem (i32.const 0) $f) (func $f)
  (func (export "run") (drop (table.get $t (i32.const 0))) (call_indirect $t (i32.const 0))))`
	if _, _, err := ExportGlobals(wat(t, src)); err != nil {
		t.Errorf("reading a table: %v", err)
	}
}
