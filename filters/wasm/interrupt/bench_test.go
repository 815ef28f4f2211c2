package interrupt

import (
	"context"
	"testing"
)

// benchGuest has a call-heavy function (fib: every call passes a function entry and an exit) and
// a loop-heavy one (sum: every iteration passes a loop head), the two places the rewrite adds
// work.
const benchGuest = `(module
  (memory (export "memory") 1)
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "sum") (param $n i32) (result i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $l
        (br_if $done (i32.gt_u (local.get $i) (local.get $n)))
        (local.set $s (i32.add (local.get $s) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s)))
`

// BenchmarkRewrite reports the cost of the checks per guest function call (fib(20) makes 21,891
// calls) and per loop iteration (sum(10000)), plain and instrumented: ns/call and ns/iter.
func BenchmarkRewrite(b *testing.B) {
	plain := wat(b, benchGuest)
	inst, err := Instrument(plain, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		bin  []byte
	}{{"plain", plain}, {"instrumented", inst}} {
		ctx := context.Background()
		rt := newRuntime(b)
		mod, err := rt.Instantiate(ctx, v.bin)
		if err != nil {
			b.Fatal(err)
		}
		for _, fn := range []struct {
			name  string
			arg   uint64
			units float64
			unit  string
		}{{"fib", 20, 21891, "ns/call"}, {"sum", 10000, 10001, "ns/iter"}} {
			f := mod.ExportedFunction(fn.name)
			b.Run(v.name+"/"+fn.name, func(b *testing.B) {
				stack := make([]uint64, 1)
				for b.Loop() {
					stack[0] = fn.arg
					if err := f.CallWithStack(ctx, stack); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fn.units, fn.unit)
			})
		}
	}
}
