// Package interrupt rewrites a WebAssembly module so that its host can stop it from another
// goroutine, cheaply.
//
// wazero stops a running guest only if its runtime compiles termination checks in
// (WithCloseOnContextDone), and then every call starts a goroutine that watches the call's
// context: a few microseconds per call, paid by every request of a filter with a timeout.
// Instrument instead adds two globals (the exported stop flag and a budget) and a check at the
// entry of every function and the head of every loop. The check counts down the budget; once every
// Every checks it calls into Go (memory.grow by 0 pages, the one instruction that always does) and
// then traps if the host has set the stop flag. The host does nothing per call.
//
// The call into Go matters as much as the flag: compiled Wasm cannot be preempted, so a guest
// that never left it would keep the garbage collector from stopping the world, and with it the
// timer that should stop the guest. A guest is therefore stopped within Every checks of its
// deadline, and pauses the world for no longer than that.
//
// The checks cover every way a guest can run on: a loop, deep or unbounded recursion and tail
// calls all pass through a loop head or a function entry.
//
// The rewrite also bounds the guest's call depth, which no runtime setting does (wazero grows a
// call stack up to about 50 MB, doubling from 10 KiB, outside the memory limit). A third global,
// Depth, starts at the maximum depth; every function entry decrements it and traps when it
// reaches 0, and every exit increments it: the function's body is wrapped in a block whose end
// the increment follows, `return` becomes a branch to that block (a branch to the function's own
// label already lands there), and a tail call increments before it leaves. A trap leaves the
// count off, which does not matter: the host discards an instance that trapped.
package interrupt

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

const (
	// Global is the export name of the i32 global that stops the guest once set non-zero.
	Global = "sluice.interrupt"
	// Every is how many checks run between two calls into Go.
	Every = 10000
	// Depth is the export name of the i32 global holding how many more calls deep the guest may
	// go; it is 0 after a trap at the depth limit.
	Depth = "sluice.depth"
	// DefaultMaxCallDepth is the depth limit Instrument applies when Options leaves it 0.
	DefaultMaxCallDepth = 10000
	// Start is the export name given to the module's start function (the start section's),
	// which Instrument removes from the start section: the host calls it right after
	// instantiation, once it can set the global, so that it too can be stopped.
	Start = "sluice.start"
)

// Section ids, in the order the binary format requires them (tag between memory and global).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order ranks the non-custom sections as they must appear.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6, secGlobal: 7,
	secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

const (
	kindFunc   = 0
	kindTable  = 1
	kindMemory = 2
	kindGlobal = 3
	kindTag    = 4
)

type section struct {
	id      byte
	payload []byte
}

// Options adjust the rewrite.
type Options struct {
	// MaxCallDepth is how many calls deep the guest may go (nested calls, not calls in total);
	// 0 means DefaultMaxCallDepth.
	MaxCallDepth uint32
}

// Instrument returns a copy of the binary module bin with the interrupt checks and the call
// depth count, the Global and Depth exports and, if bin has a start section, the Start export
// in its place. bin must be a core module the runtime would accept, with a memory (the checks
// grow it by 0 pages); Instrument checks only as much of its structure as it rewrites.
func Instrument(bin []byte, opt Options) ([]byte, error) {
	maxDepth := opt.MaxCallDepth
	if maxDepth == 0 {
		maxDepth = DefaultMaxCallDepth
	}
	if maxDepth > 1<<30 {
		return nil, fmt.Errorf("call depth limit %d is above 2^30", maxDepth)
	}
	secs, err := sections(bin)
	if err != nil {
		return nil, err
	}

	// The new globals' indices follow the imported and the defined globals.
	var global, memories uint32
	var exports [][]byte
	var types []funcType
	var funcs []uint32
	start := -1
	for i, s := range secs {
		var n uint32
		var err error
		switch s.id {
		case secImport:
			var g, m uint32
			g, m, err = countImports(s.payload)
			global, memories = global+g, memories+m
		case secMemory:
			n, err = vectorLength(s.payload)
			memories += n
		case secGlobal:
			n, err = vectorLength(s.payload)
			global += n
		case secExport:
			exports, err = exportNames(s.payload)
		case secType:
			types, err = readTypes(s.payload)
		case secFunction:
			funcs, err = readFunctions(s.payload, uint32(len(types)))
		case secStart:
			start = i
		}
		if err != nil {
			return nil, err
		}
	}
	if memories == 0 {
		return nil, errors.New("the module has no memory")
	}
	for _, name := range exports {
		if string(name) == Global || string(name) == Start || string(name) == Depth {
			return nil, fmt.Errorf("the module already exports %q", name)
		}
	}

	newExports := appendExport(nil, Global, kindGlobal, global)
	newExports = appendExport(newExports, Depth, kindGlobal, global+2)
	nNew := uint32(2)
	if start >= 0 {
		sr := reader{b: secs[start].payload}
		fn := sr.u32()
		if sr.err != nil || sr.off != len(sr.b) {
			return nil, errors.New("malformed start section")
		}
		newExports = appendExport(newExports, Start, kindFunc, fn)
		nNew++
		secs = append(secs[:start], secs[start+1:]...)
	}

	stop, budget, depth := global, global+1, global+2
	// budget--; if budget == 0 { budget = Every; memory.grow(0); if stop { unreachable } }
	check := appendU32([]byte{0x23}, budget)      // global.get $budget
	check = append(check, 0x41, 0x01, 0x6b, 0x24) // i32.const 1; i32.sub; global.set
	check = appendU32(check, budget)              //   $budget
	check = append(check, 0x23)                   // global.get
	check = appendU32(check, budget)              //   $budget
	check = append(check, 0x45, 0x04, 0x40, 0x41) // i32.eqz; if; i32.const
	check = appendS32(check, Every)               //   Every
	check = append(check, 0x24)                   // global.set
	check = appendU32(check, budget)              //   $budget
	// i32.const 0; memory.grow 0; drop; global.get $stop
	check = append(check, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x23)
	check = appendU32(check, stop)
	check = append(check, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if; unreachable; end; end

	// At function entry: depth--; if depth == 0 { unreachable }
	enter := appendU32([]byte{0x23}, depth)             // global.get $depth
	enter = append(enter, 0x41, 0x01, 0x6b, 0x24)       // i32.const 1; i32.sub; global.set
	enter = appendU32(enter, depth)                     //   $depth
	enter = append(enter, 0x23)                         // global.get
	enter = appendU32(enter, depth)                     //   $depth
	enter = append(enter, 0x45, 0x04, 0x40, 0x00, 0x0b) // i32.eqz; if; unreachable; end
	// At every exit: depth++
	leave := appendU32([]byte{0x23}, depth)       // global.get $depth
	leave = append(leave, 0x41, 0x01, 0x6a, 0x24) // i32.const 1; i32.add; global.set
	leave = appendU32(leave, depth)               //   $depth

	// Three mutable i32 globals: stop (0), budget (Every) and depth (the limit).
	newGlobals := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41}
	newGlobals = appendS32(newGlobals, Every)
	newGlobals = append(newGlobals, 0x0b, 0x7f, 0x01, 0x41)
	newGlobals = appendS32(newGlobals, int32(maxDepth))
	newGlobals = append(newGlobals, 0x0b)
	secs = addToSection(secs, secGlobal, 3, newGlobals)
	secs = addToSection(secs, secExport, nNew, newExports)

	// Each body is wrapped in a block of the function's results; a function with more than one
	// result needs a type [] -> results for it, found or added to the type section.
	blockTypes := make([][]byte, len(funcs))
	defined := len(types)
	var addedTypes []byte
	for i, ti := range funcs {
		ft := types[ti]
		switch {
		case len(ft.results) == 0:
			blockTypes[i] = []byte{0x40}
		case len(ft.results) == 1:
			blockTypes[i] = ft.results[0]
		default:
			idx := slices.IndexFunc(types, func(t funcType) bool { return t.params == 0 && t.sameResults(ft) })
			if idx < 0 {
				idx = len(types)
				types = append(types, funcType{results: ft.results})
				addedTypes = append(addedTypes, 0x60, 0x00)
				addedTypes = appendU32(addedTypes, uint32(len(ft.results)))
				for _, r := range ft.results {
					addedTypes = append(addedTypes, r...)
				}
			}
			blockTypes[i] = appendS32(nil, int32(idx))
		}
	}
	if added := len(types) - defined; added > 0 {
		secs = addToSection(secs, secType, uint32(added), addedTypes)
	}

	out := append([]byte(nil), bin[:8]...)
	for _, s := range secs {
		payload := s.payload
		if s.id == secCode {
			var err error
			if payload, err = instrumentCode(payload, blockTypes, check, enter, leave); err != nil {
				return nil, err
			}
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	return out, nil
}

// addToSection appends n entries to the vector section id, creating the section in its place if
// the module has none.
func addToSection(secs []section, id byte, n uint32, entries []byte) []section {
	for i, s := range secs {
		if s.id != id {
			continue
		}
		r := reader{b: s.payload}
		count := r.u32()
		p := appendU32(nil, count+n)
		p = append(p, s.payload[r.off:]...)
		secs[i].payload = append(p, entries...)
		return secs
	}
	at := len(secs)
	for i, s := range secs {
		if s.id != secCustom && order[s.id] > order[id] {
			at = i
			break
		}
	}
	p := append(appendU32(nil, n), entries...)
	return append(secs[:at], append([]section{{id, p}}, secs[at:]...)...)
}

func appendExport(b []byte, name string, kind byte, index uint32) []byte {
	b = appendU32(b, uint32(len(name)))
	b = append(b, name...)
	b = append(b, kind)
	return appendU32(b, index)
}

// vectorLength returns the entry count that starts a vector section's payload.
func vectorLength(p []byte) (uint32, error) {
	r := reader{b: p}
	n := r.u32()
	if r.err != nil {
		return 0, fmt.Errorf("reading a section's entry count: %w", r.err)
	}
	return n, nil
}

// countImports returns how many globals and memories the import section p imports.
func countImports(p []byte) (globals, memories uint32, err error) {
	r := reader{b: p}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case kindFunc:
			r.u32()
		case kindTable:
			r.valtype()
			r.limits()
		case kindMemory:
			r.limits()
			memories++
		case kindGlobal:
			r.valtype()
			r.byte()
			globals++
		case kindTag:
			r.byte()
			r.u32()
		default:
			if r.err == nil {
				return 0, 0, fmt.Errorf("import section: unknown import kind %d", kind)
			}
		}
	}
	if r.err == nil && r.off != len(p) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("import section: %w", r.err)
	}
	return globals, memories, nil
}

func exportNames(p []byte) ([][]byte, error) {
	r := reader{b: p}
	n := r.u32()
	var names [][]byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		names = append(names, r.name())
		r.byte()
		r.u32()
	}
	if r.err == nil && r.off != len(p) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("export section: %w", r.err)
	}
	return names, nil
}

// instrumentCode rewrites the code section: see instrumentBody. blockTypes has the block type of
// each defined function's results.
func instrumentCode(p []byte, blockTypes [][]byte, check, enter, leave []byte) ([]byte, error) {
	r := reader{b: p}
	n := r.u32()
	if r.err == nil && n != uint32(len(blockTypes)) {
		return nil, fmt.Errorf("code section: %d bodies for %d functions", n, len(blockTypes))
	}
	out := appendU32(make([]byte, 0, len(p)+len(p)/4), n)
	var body []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		b := r.bytes(int(size))
		if r.err != nil {
			break
		}
		var err error
		if body, err = instrumentBody(body[:0], b, blockTypes[i], check, enter, leave); err != nil {
			return nil, fmt.Errorf("code section, function body %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if r.err == nil && r.off != len(p) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("code section: %w", r.err)
	}
	return out, nil
}

// instrumentBody rewrites one function body:
//
//	check; enter; block (result ...) BODY' end; leave; end
//
// where BODY' is the body with check after each loop's block type, `return` replaced by a branch
// to the added block (whose label index is the number of labels open at that point), and leave
// before each tail call.
func instrumentBody(out, body, blockType, check, enter, leave []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32() // local declarations: a count and a type each
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.u32()
		r.valtype()
	}
	out = append(out, body[:r.off]...)
	out = append(out, check...)
	out = append(out, enter...)
	out = append(out, 0x02) // block
	out = append(out, blockType...)
	open := uint32(0) // labels opened inside the body and not yet closed
	for r.off < len(body) && r.err == nil {
		at := r.off
		op := r.byte()
		r.immediates(op)
		switch op {
		case 0x0f: // return: leave through the added block's end
			out = appendU32(append(out, 0x0c), open)
			continue
		case 0x12, 0x13, 0x15: // return_call return_call_indirect return_call_ref
			out = append(out, leave...)
		case 0x0b: // end
			if open == 0 {
				if r.off != len(body) {
					return nil, errors.New("instructions after the function's end")
				}
				out = append(out, 0x0b)
				out = append(out, leave...)
				out = append(out, 0x0b)
				return out, nil
			}
			open--
		case 0x18: // delegate ends a try block
			open--
		case 0x02, 0x03, 0x04, 0x06, 0x1f: // block loop if try try_table
			open++
		}
		out = append(out, body[at:r.off]...)
		if op == 0x03 { // loop: check at its head, which every iteration branches back to
			out = append(out, check...)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return nil, errors.New("function body does not end")
}

// funcType is what the rewrite needs of a function type: how many parameters it takes, and the
// encoding of each result type.
type funcType struct {
	params  uint32
	results [][]byte
}

func (t funcType) sameResults(u funcType) bool {
	return slices.EqualFunc(t.results, u.results, bytes.Equal)
}

// readTypes reads the type section: function types only (the GC proposal's recursive and sub
// types are not supported).
func readTypes(p []byte) ([]funcType, error) {
	r := reader{b: p}
	n := r.u32()
	var types []funcType
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 && r.err == nil {
			return nil, fmt.Errorf("type section: type %d has form 0x%02x, only function types (0x60) are supported", i, form)
		}
		var t funcType
		t.params = r.u32()
		for j := uint32(0); j < t.params && r.err == nil; j++ {
			r.valtype()
		}
		nr := r.u32()
		for j := uint32(0); j < nr && r.err == nil; j++ {
			at := r.off
			r.valtype()
			t.results = append(t.results, r.b[at:r.off])
		}
		types = append(types, t)
	}
	if r.err == nil && r.off != len(p) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("type section: %w", r.err)
	}
	return types, nil
}

// readFunctions reads the function section: the type index of each defined function.
func readFunctions(p []byte, nTypes uint32) ([]uint32, error) {
	r := reader{b: p}
	n := r.u32()
	var funcs []uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		ti := r.u32()
		if r.err == nil && ti >= nTypes {
			return nil, fmt.Errorf("function section: function %d has type %d of %d", i, ti, nTypes)
		}
		funcs = append(funcs, ti)
	}
	if r.err == nil && r.off != len(p) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("function section: %w", r.err)
	}
	return funcs, nil
}

// reader decodes the binary format; the first error sticks and later reads return zeros.
type reader struct {
	b   []byte
	off int
	err error
}

var errEOF = errors.New("unexpected end")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(errEOF)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(errEOF)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(errors.New("LEB128 integer too long"))
	return 0
}

// leb skips a LEB128 integer of at most 64 bits, signed or not.
func (r *reader) leb() {
	for range 10 {
		if c := r.byte(); c&0x80 == 0 || r.err != nil {
			return
		}
	}
	r.fail(errors.New("LEB128 integer too long"))
}

func (r *reader) name() []byte { return r.bytes(int(r.u32())) }

// valtype skips a value type: one byte, or a reference type with a heap type (0x63/0x64).
func (r *reader) valtype() {
	if c := r.byte(); c == 0x63 || c == 0x64 {
		r.leb()
	}
}

// blockType skips a block type: empty (0x40), a value type, or a type index (s33).
func (r *reader) blockType() {
	if r.err == nil && r.off < len(r.b) && (r.b[r.off] == 0x63 || r.b[r.off] == 0x64) {
		r.valtype()
		return
	}
	// 0x40 and the one-byte value types are single-byte negative s33 values.
	r.leb()
}

func (r *reader) limits() {
	flags := r.byte()
	r.leb()
	if flags&1 != 0 {
		r.leb()
	}
}

// memarg skips an alignment (with the memory index flag, bit 6) and an offset.
func (r *reader) memarg() {
	if r.u32()&0x40 != 0 {
		r.u32()
	}
	r.leb()
}

// immediates skips the immediates of the instruction op.
func (r *reader) immediates(op byte) {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block loop if try
		r.blockType()
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18: // catch throw rethrow delegate
		r.u32()
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15: // br br_if call return_call call_ref return_call_ref
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.u32()
		}
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.valtype()
		}
	case op == 0x1f: // try_table
		r.blockType()
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			switch kind := r.byte(); kind {
			case 0, 1: // catch, catch_ref: a tag and a label
				r.u32()
				r.u32()
			case 2, 3: // catch_all, catch_all_ref: a label
				r.u32()
			default:
				r.fail(fmt.Errorf("unknown catch clause %d", kind))
			}
		}
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const i64.const
		r.leb()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null
		r.leb()
	case op == 0xd2 || op == 0xd5 || op == 0xd6: // ref.func br_on_null br_on_non_null
		r.u32()
	case op == 0xfc:
		r.misc(r.u32())
	case op == 0xfd:
		r.vector(r.u32())
	case op == 0xfe:
		r.atomic(r.u32())
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1, op == 0xd3, op == 0xd4:
		// no immediates
	default:
		r.fail(fmt.Errorf("unknown opcode 0x%02x at offset %d", op, r.off-1))
	}
}

func (r *reader) misc(op uint32) {
	switch {
	case op <= 0x07: // saturating truncations
	case op == 0x08: // memory.init data memory
		r.u32()
		r.u32()
	case op == 0x09 || op == 0x0b || op == 0x0d || op >= 0x0f && op <= 0x11: // data.drop memory.fill elem.drop table.grow/size/fill
		r.u32()
	case op == 0x0a || op == 0x0c || op == 0x0e: // memory.copy table.init table.copy
		r.u32()
		r.u32()
	default:
		r.fail(fmt.Errorf("unknown opcode 0xfc %d", op))
	}
}

func (r *reader) vector(op uint32) {
	switch {
	case op <= 0x0b || op == 0x5c || op == 0x5d: // loads and stores, load zero
		r.memarg()
	case op == 0x0c || op == 0x0d: // v128.const i8x16.shuffle
		r.bytes(16)
	case op >= 0x15 && op <= 0x22: // extract and replace lane
		r.byte()
	case op >= 0x54 && op <= 0x5b: // load and store lane
		r.memarg()
		r.byte()
	case op <= 0x113:
		// the rest, relaxed SIMD included, have no immediates
	default:
		r.fail(fmt.Errorf("unknown opcode 0xfd %d", op))
	}
}

func (r *reader) atomic(op uint32) {
	switch {
	case op == 0x03: // atomic.fence
		r.byte()
	case op <= 0x02 || op >= 0x10 && op <= 0x4e:
		r.memarg()
	default:
		r.fail(fmt.Errorf("unknown opcode 0xfe %d", op))
	}
}

// appendS32 appends v as a signed LEB128 integer, as i32.const takes it.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
