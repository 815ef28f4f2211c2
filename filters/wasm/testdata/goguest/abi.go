package main

import (
	"runtime"
	"strings"
	"unsafe"
)

// Imports of the http-wasm handler ABI, module "http_handler".

//go:wasmimport http_handler enable_features
func enableFeatures(features uint32) uint32

//go:wasmimport http_handler get_config
func getConfig(buf, limit uint32) uint32

//go:wasmimport http_handler log_enabled
func logEnabled(level int32) uint32

//go:wasmimport http_handler log
func logMessage(level int32, msg, msgLen uint32)

//go:wasmimport http_handler get_method
func getMethod(buf, limit uint32) uint32

//go:wasmimport http_handler set_method
func setMethod(ptr, n uint32)

//go:wasmimport http_handler get_uri
func getURI(buf, limit uint32) uint32

//go:wasmimport http_handler set_uri
func setURI(ptr, n uint32)

//go:wasmimport http_handler get_protocol_version
func getProtocolVersion(buf, limit uint32) uint32

//go:wasmimport http_handler get_source_addr
func getSourceAddr(buf, limit uint32) uint32

//go:wasmimport http_handler get_header_names
func getHeaderNames(kind, buf, limit uint32) uint64

//go:wasmimport http_handler get_header_values
func getHeaderValues(kind, name, nameLen, buf, limit uint32) uint64

//go:wasmimport http_handler set_header_value
func setHeaderValue(kind, name, nameLen, value, valueLen uint32)

//go:wasmimport http_handler add_header_value
func addHeaderValue(kind, name, nameLen, value, valueLen uint32)

//go:wasmimport http_handler remove_header
func removeHeader(kind, name, nameLen uint32)

//go:wasmimport http_handler read_body
func readBody(kind, buf, limit uint32) uint64

//go:wasmimport http_handler write_body
func writeBody(kind, ptr, n uint32)

//go:wasmimport http_handler get_status_code
func getStatusCode() uint32

//go:wasmimport http_handler set_status_code
func setStatusCode(code uint32)

const (
	kindRequest          = 0
	kindResponse         = 1
	kindRequestTrailers  = 2
	kindResponseTrailers = 3
)

// scratch is the one reusable read buffer, grown when a value does not fit.
var scratch = make([]byte, 64)

func bptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

func sptr(s string) uint32 {
	if len(s) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

// get reads a value with the buf/buf_limit protocol: try the scratch buffer, grow and retry.
func get(fn func(buf, limit uint32) uint32) string {
	n := fn(bptr(scratch), uint32(len(scratch)))
	if n > uint32(len(scratch)) {
		scratch = make([]byte, n)
		n = fn(bptr(scratch), n)
	}
	runtime.KeepAlive(scratch)
	return string(scratch[:n])
}

func getList(fn func(buf, limit uint32) uint64) []string {
	cl := fn(bptr(scratch), uint32(len(scratch)))
	n := uint32(cl)
	if n > uint32(len(scratch)) {
		scratch = make([]byte, n)
		cl = fn(bptr(scratch), n)
		n = uint32(cl)
	}
	count := int(cl >> 32)
	if count == 0 {
		return nil
	}
	out := strings.Split(string(scratch[:n-1]), "\x00")
	if len(out) != count {
		panic("count_len count does not match the values written")
	}
	return out
}

func header(kind uint32, name string) []string {
	defer runtime.KeepAlive(name)
	return getList(func(buf, limit uint32) uint64 {
		return getHeaderValues(kind, sptr(name), uint32(len(name)), buf, limit)
	})
}

func header1(kind uint32, name string) string {
	if v := header(kind, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func names(kind uint32) []string {
	return getList(func(buf, limit uint32) uint64 { return getHeaderNames(kind, buf, limit) })
}

func set(kind uint32, name, value string) {
	setHeaderValue(kind, sptr(name), uint32(len(name)), sptr(value), uint32(len(value)))
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
}

func add(kind uint32, name, value string) {
	addHeaderValue(kind, sptr(name), uint32(len(name)), sptr(value), uint32(len(value)))
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
}

func remove(kind uint32, name string) {
	removeHeader(kind, sptr(name), uint32(len(name)))
	runtime.KeepAlive(name)
}

func write(kind uint32, s string) {
	writeBody(kind, sptr(s), uint32(len(s)))
	runtime.KeepAlive(s)
}

// body reads a whole body in small steps, exercising the stateful reads.
func body(kind uint32) string {
	var out []byte
	chunk := make([]byte, 1000)
	for {
		el := readBody(kind, bptr(chunk), uint32(len(chunk)))
		out = append(out, chunk[:uint32(el)]...)
		if el>>32 == 1 {
			return string(out)
		}
	}
}

func logf(level int32, msg string) {
	logMessage(level, sptr(msg), uint32(len(msg)))
	runtime.KeepAlive(msg)
}
