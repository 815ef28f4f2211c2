package interrupt

import (
	"errors"
	"fmt"
	"strconv"
)

// GlobalPrefix starts the export names ExportGlobals gives the module's mutable globals:
// GlobalPrefix + "0", "1", … in the order they are defined.
const GlobalPrefix = "sluice.global."

// ExportGlobals prepares a module for per-request isolation, where the host restores the
// guest's state to a snapshot after every request: it returns a copy of bin that also exports
// each mutable global the module defines (the host can read and write only exported globals),
// and their count. It refuses a module whose code changes a table (table.set, table.grow,
// table.fill, table.copy, table.init or elem.drop): a table cannot be restored from outside,
// and a function reference it holds would outlive the request. It also refuses mutable globals
// of a reference or vector type, which the host cannot save and restore as a number.
func ExportGlobals(bin []byte) ([]byte, int, error) {
	secs, err := sections(bin)
	if err != nil {
		return nil, 0, err
	}
	var imported uint32
	var mutable []uint32
	var exports [][]byte
	for _, s := range secs {
		switch s.id {
		case secImport:
			g, _, err := countImports(s.payload)
			if err != nil {
				return nil, 0, err
			}
			imported += g
		case secGlobal:
			if mutable, err = mutableGlobals(s.payload); err != nil {
				return nil, 0, err
			}
		case secExport:
			if exports, err = exportNames(s.payload); err != nil {
				return nil, 0, err
			}
		case secCode:
			if err := checkTables(s.payload); err != nil {
				return nil, 0, err
			}
		}
	}
	for _, name := range exports {
		if len(name) >= len(GlobalPrefix) && string(name[:len(GlobalPrefix)]) == GlobalPrefix {
			return nil, 0, fmt.Errorf("the module already exports %q, a name reserved for the host", name)
		}
	}
	if len(mutable) == 0 {
		return append([]byte(nil), bin...), 0, nil
	}
	var entries []byte
	for i, idx := range mutable {
		entries = appendExport(entries, GlobalPrefix+strconv.Itoa(i), kindGlobal, imported+idx)
	}
	secs = addToSection(secs, secExport, uint32(len(mutable)), entries)
	out := append([]byte(nil), bin[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out, len(mutable), nil
}

// sections splits a core module into its sections, checking the header and the order.
func sections(bin []byte) ([]section, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly binary (no \\0asm header)")
	}
	if string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("binary format version %x: only version 1 (a core module) is supported", bin[4:8])
	}
	r := reader{b: bin, off: 8}
	var secs []section
	last := 0
	for r.off < len(bin) && r.err == nil {
		id := r.byte()
		payload := r.bytes(int(r.u32()))
		if r.err != nil {
			break
		}
		if id != secCustom {
			rank, ok := order[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if rank <= last {
				return nil, fmt.Errorf("section %d out of order", id)
			}
			last = rank
		}
		secs = append(secs, section{id, payload})
	}
	if r.err != nil {
		return nil, fmt.Errorf("reading sections: %w", r.err)
	}
	return secs, nil
}

// mutableGlobals returns the indices, among the module's own globals, of the mutable ones.
func mutableGlobals(p []byte) ([]uint32, error) {
	r := reader{b: p}
	n := r.u32()
	var out []uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		typ := byte(0)
		if r.off < len(r.b) {
			typ = r.b[r.off]
		}
		r.valtype()
		mut := r.byte()
		// The initializer is a constant expression: instructions up to an end (0x0b).
		for r.err == nil {
			op := r.byte()
			if op == 0x0b {
				break
			}
			r.immediates(op)
		}
		if mut != 1 {
			continue
		}
		switch typ {
		case 0x7f, 0x7e, 0x7d, 0x7c: // i32 i64 f32 f64
			out = append(out, i)
		default:
			return nil, fmt.Errorf("global %d is a mutable %s: per-request isolation can restore only numeric globals", i, typeName(typ))
		}
	}
	if r.err == nil && r.off != len(p) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("global section: %w", r.err)
	}
	return out, nil
}

func typeName(t byte) string {
	if t == 0x7b {
		return "v128"
	}
	return "reference"
}

// checkTables refuses code that changes a table.
func checkTables(p []byte) error {
	r := reader{b: p}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		body := r.bytes(int(r.u32()))
		if r.err != nil {
			break
		}
		if op := tableWrite(body); op != "" {
			return fmt.Errorf("function body %d uses %s: per-request isolation cannot restore tables, so modules that change them are refused", i, op)
		}
	}
	if r.err != nil {
		return fmt.Errorf("code section: %w", r.err)
	}
	return nil
}

// tableWrite returns the first table-changing instruction in a function body, or "".
func tableWrite(body []byte) string {
	r := reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.u32()
		r.valtype()
	}
	for r.off < len(body) && r.err == nil {
		op := r.byte()
		if op == 0x26 {
			return "table.set"
		}
		if op == 0xfc && r.err == nil {
			at := r.off
			sub := r.u32()
			switch sub {
			case 0x0c:
				return "table.init"
			case 0x0d:
				return "elem.drop"
			case 0x0e:
				return "table.copy"
			case 0x0f:
				return "table.grow"
			case 0x11:
				return "table.fill"
			}
			r.off = at
		}
		r.immediates(op)
	}
	return ""
}
