//go:build wasip1

package abi

import "unsafe"

// The imports take unsafe.Pointer rather than uint32 offsets so the garbage collector sees the
// buffer as referenced for the duration of the call (Go's wasm GC does not move objects).

//go:wasmimport http_handler enable_features
func enableFeatures(features uint32) uint32

//go:wasmimport http_handler get_config
func getConfig(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler log
func log(level int32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport http_handler log_enabled
func logEnabled(level int32) uint32

//go:wasmimport http_handler get_method
func getMethod(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_method
func setMethod(p unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_uri
func getURI(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_uri
func setURI(p unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_protocol_version
func getProtocolVersion(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler get_source_addr
func getSourceAddr(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler get_header_names
func getHeaderNames(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler get_header_values
func getHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler set_header_value
func setHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler add_header_value
func addHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler remove_header
func removeHeader(kind uint32, name unsafe.Pointer, nameLen uint32)

//go:wasmimport http_handler read_body
func readBody(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler write_body
func writeBody(kind uint32, p unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_status_code
func getStatusCode() uint32

//go:wasmimport http_handler set_status_code
func setStatusCode(code uint32)

func bp(b []byte) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))
}
func sp(s string) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

func EnableFeatures(f uint32) uint32       { return enableFeatures(f) }
func GetConfig(buf []byte) uint32          { p, n := bp(buf); return getConfig(p, n) }
func Log(level int32, msg string)          { p, n := sp(msg); log(level, p, n) }
func LogEnabled(level int32) bool          { return logEnabled(level) == 1 }
func GetMethod(buf []byte) uint32          { p, n := bp(buf); return getMethod(p, n) }
func SetMethod(s string)                   { p, n := sp(s); setMethod(p, n) }
func GetURI(buf []byte) uint32             { p, n := bp(buf); return getURI(p, n) }
func SetURI(s string)                      { p, n := sp(s); setURI(p, n) }
func GetProtocolVersion(buf []byte) uint32 { p, n := bp(buf); return getProtocolVersion(p, n) }
func GetSourceAddr(buf []byte) uint32      { p, n := bp(buf); return getSourceAddr(p, n) }
func GetHeaderNames(kind uint32, buf []byte) uint64 {
	p, n := bp(buf)
	return getHeaderNames(kind, p, n)
}
func GetHeaderValues(kind uint32, name string, buf []byte) uint64 {
	np, nn := sp(name)
	p, n := bp(buf)
	return getHeaderValues(kind, np, nn, p, n)
}
func SetHeaderValue(kind uint32, name, value string) {
	np, nn := sp(name)
	vp, vn := sp(value)
	setHeaderValue(kind, np, nn, vp, vn)
}
func AddHeaderValue(kind uint32, name, value string) {
	np, nn := sp(name)
	vp, vn := sp(value)
	addHeaderValue(kind, np, nn, vp, vn)
}
func RemoveHeader(kind uint32, name string)   { np, nn := sp(name); removeHeader(kind, np, nn) }
func ReadBody(kind uint32, buf []byte) uint64 { p, n := bp(buf); return readBody(kind, p, n) }
func WriteBody(kind uint32, b []byte)         { p, n := bp(b); writeBody(kind, p, n) }
func GetStatusCode() uint32                   { return getStatusCode() }
func SetStatusCode(code uint32)               { setStatusCode(code) }
