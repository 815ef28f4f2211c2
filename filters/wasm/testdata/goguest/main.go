// Command goguest is a test guest for Sluice's http-wasm host, built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm .
//
// The request header x-httpwasm-tck-testid selects a case of the public http-wasm TCK (the same
// ids and response conventions); x-test selects one of Sluice's own cases.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {}

// startFeatures is what enable_features returned in the start function (init runs there);
// asking for nothing there keeps every feature per-request in the tests.
var startFeatures = enableFeatures(0)

// Per-request state kept in globals: safe only because an instance serves one request at a time
// from handle_request to handle_response, which is what the hammer test checks.
var (
	current string
	echoID  string
	served  int
)

//go:wasmexport handle_request
func handleRequest() uint64 {
	served++
	if id := header1(kindRequest, "x-httpwasm-tck-testid"); id != "" {
		next, ctx := tck(id)
		set(kindResponse, "x-httpwasm-tck-handled", "1")
		return result(next, ctx)
	}
	current = header1(kindRequest, "x-test")
	switch current {
	case "echo":
		// Carry a per-request value from request to response in a global.
		echoID = header1(kindRequest, "x-req-id")
		set(kindRequest, "x-wasm-saw", echoID)
		n, _ := strconv.Atoi(echoID)
		return result(true, uint32(n))
	case "config":
		write(kindResponse, get(getConfig))
		return 0
	case "log":
		for level := int32(-1); level <= 3; level++ {
			if logEnabled(level) == 1 {
				logf(level, fmt.Sprintf("guest says level %d", level))
			}
		}
		println("to stderr") // Go's println writes to fd 2
		fmt.Println("to stdout")
		return 0
	case "limits":
		if err := limits(); err != "" {
			setStatusCode(500)
			write(kindResponse, err)
		}
		return 0
	case "names":
		write(kindResponse, strings.Join(names(kindRequest), ","))
		return 0
	case "values":
		write(kindResponse, strings.Join(header(kindRequest, "X-Multi"), ","))
		return 0
	case "info":
		write(kindResponse, get(getMethod)+" "+get(getURI)+" "+get(getProtocolVersion)+" "+get(getSourceAddr))
		return 0
	case "respond":
		setStatusCode(418)
		set(kindResponse, "x-guest", "teapot")
		add(kindResponse, "x-guest", "second")
		write(kindResponse, "short ")
		write(kindResponse, "and stout")
		return 0
	case "merge":
		set(kindResponse, "x-guest-only", "guest")
		set(kindResponse, "x-both", "guest")
		write(kindResponse, "guest body")
		if header1(kindRequest, "x-status") != "" {
			setStatusCode(299)
		}
		return 1
	case "rewrite":
		setMethod(sptr("PUT"), 3)
		u := header1(kindRequest, "x-new-uri")
		setURI(sptr(u), uint32(len(u)))
		remove(kindRequest, "x-drop")
		add(kindRequest, "x-added", "a")
		add(kindRequest, "x-added", "b")
		set(kindRequest, "x-set", "s")
		write(kindRequest, "new ")
		write(kindRequest, "body")
		return 1
	case "buffer-response":
		enableFeatures(2)
		return 1
	case "read-request-later":
		if header1(kindRequest, "x-buffer") != "" {
			enableFeatures(1)
		}
		return 1
	case "mutate-after-next", "status-after-next", "status-code", "is-error", "reqctx":
		if current == "reqctx" {
			return 42<<32 | 1
		}
		return 1
	case "features":
		got := enableFeatures(0)
		all := enableFeatures(1 | 2 | 4)
		write(kindResponse, fmt.Sprintf("start=%d now=%d all=%d", startFeatures, got, all))
		return 0
	case "trailers":
		if header1(kindRequest, "x-enable") != "" {
			enableFeatures(4)
		}
		if n := getHeaderNames(kindRequestTrailers, 0, 0); n != 0 {
			setStatusCode(500)
		}
		set(kindResponseTrailers, "grpc-status", "0") // traps unless the trailers feature is on
		write(kindResponse, "answered with a trailer")
		return 0
	case "trailer-before-next":
		// Merged under the upstream's response like a header written before next.
		enableFeatures(4)
		set(kindResponseTrailers, "x-guest-trailer", "g")
		set(kindResponseTrailers, "x-dropped", "d")
		remove(kindResponseTrailers, "x-dropped")
		return 1
	case "panic":
		panic("guest panic on purpose")
	case "write-then-panic":
		set(kindResponse, "x-partial", "1")
		setStatusCode(299)
		write(kindResponse, "partial")
		panic("guest panic after writing a response")
	case "oom":
		big := make([]byte, 256<<20)
		big[len(big)-1] = 1
		return uint64(big[len(big)-1]) - 1
	case "sandbox":
		// What the guest can reach of the host: no files, no environment, no arguments.
		_, ferr := os.ReadFile("/etc/passwd")
		_, derr := os.ReadDir(".")
		write(kindResponse, fmt.Sprintf("file=%v dir=%v env=%d args=%d", ferr != nil, derr != nil, len(os.Environ()), len(os.Args)))
		return 0
	case "served":
		write(kindResponse, strconv.Itoa(served))
		return 0
	}
	return 1
}

func result(next bool, ctx uint32) uint64 {
	r := uint64(ctx) << 32
	if next {
		r |= 1
	}
	return r
}

//go:wasmexport handle_response
func handleResponse(reqCtx, isError uint32) {
	switch current {
	case "echo":
		n, _ := strconv.Atoi(echoID)
		if uint32(n) != reqCtx {
			set(kindResponse, "x-echo-ctx-mismatch", strconv.Itoa(int(reqCtx)))
		}
		set(kindResponse, "x-echo", echoID)
	case "mutate-after-next":
		set(kindRequest, "x-late", "1") // traps: the request has gone upstream
	case "status-after-next":
		setStatusCode(202) // traps without buffer_response
	case "buffer-response":
		b := body(kindResponse)
		setStatusCode(201)
		write(kindResponse, strings.ToUpper(b))
		write(kindResponse, "!")
		remove(kindResponse, "x-upstream")
	case "read-request-later":
		set(kindResponse, "x-request-body", body(kindRequest))
	case "status-code":
		set(kindResponse, "x-upstream-status", strconv.Itoa(int(getStatusCode())))
	case "is-error":
		set(kindResponse, "x-is-error", strconv.Itoa(int(isError)))
	case "reqctx":
		set(kindResponse, "x-reqctx", strconv.Itoa(int(reqCtx)))
	}
	current = ""
}

// limits checks the buf/buf_limit protocol from the guest's side.
func limits() string {
	sentinel := []byte("########")
	n := getURI(bptr(sentinel), 2) // too small: nothing written, full length returned
	if string(sentinel) != "########" {
		return "get_uri wrote past a too-small buf_limit"
	}
	if want := len(get(getURI)); int(n) != want {
		return fmt.Sprintf("get_uri with a small limit returned %d, want %d", n, want)
	}
	if n := getMethod(0, 0); n != 3 {
		return fmt.Sprintf("get_method(0, 0) = %d, want 3", n)
	}
	cl := getHeaderNames(kindRequest, bptr(sentinel), 1)
	if string(sentinel) != "########" || cl>>32 == 0 {
		return "get_header_names did not honour buf_limit"
	}
	name := "x-multi"
	cl = getHeaderValues(kindRequest, sptr(name), uint32(len(name)), bptr(sentinel), uint32(len(sentinel)))
	if cl != 2<<32|4 || string(sentinel[:6]) != "1\x002\x00##" {
		return fmt.Sprintf("get_header_values(x-multi) = %x %q", cl, sentinel)
	}
	name = "x-absent"
	if cl := getHeaderValues(kindRequest, sptr(name), uint32(len(name)), 0, 0); cl != 0 {
		return "absent header has values"
	}
	return ""
}

// tck reproduces the checks of the http-wasm TCK guest (github.com/http-wasm/http-wasm-host-go/tck).
func tck(id string) (next bool, ctx uint32) {
	switch {
	case id == "get_protocol_version":
		write(kindResponse, get(getProtocolVersion))
		return true, 0
	case strings.HasPrefix(id, "get_method/"):
		want := strings.TrimPrefix(id, "get_method/")
		if got := get(getMethod); got != want {
			fail(fmt.Sprintf("get_method: want %s, have %s", want, got))
		}
		return true, 0
	case id == "set_method":
		setMethod(sptr("POST"), 4)
		return true, 0
	case strings.HasPrefix(id, "get_uri/"):
		want := map[string]string{
			"get_uri/simple": "/simple", "get_uri/simple/escaping": "/simple%26clean",
			"get_uri/query": "/animal?name=panda", "get_uri/query/escaping": "/disney?name=chip%26dale",
		}[id]
		if got := get(getURI); got != want {
			fail(fmt.Sprintf("get_uri: want %s, have %s", want, got))
		}
		return true, 0
	case strings.HasPrefix(id, "set_uri/"):
		u := map[string]string{
			"set_uri/simple": "/simple", "set_uri/simple/escaping": "/simple%26clean",
			"set_uri/query": "/animal?name=panda", "set_uri/query/escaping": "/disney?name=chip%26dale",
		}[id]
		setURI(sptr(u), uint32(len(u)))
		return true, 0
	case strings.HasPrefix(id, "get_header_values/request/"):
		key, want := "single-header", []string{"value"}
		switch strings.TrimPrefix(id, "get_header_values/request/") {
		case "mixedcase-key":
			key = "Single-Header"
		case "not-exists":
			key, want = "not-header", nil
		case "multiple-values":
			key, want = "multi-header", []string{"value1", "value2"}
		}
		have := header(kindRequest, key)
		if strings.Join(have, "\x00") != strings.Join(want, "\x00") {
			fail(fmt.Sprintf("get_request_header: want %q, have %q", want, have))
		}
		return true, 0
	case id == "get_header_names/request":
		have := names(kindRequest)
		for _, want := range []string{"a-header", "b-header"} {
			found := false
			for _, h := range have {
				found = found || h == want
			}
			if !found {
				fail(fmt.Sprintf("get_header_names/request: want %s, not found. have: %v", want, have))
				return
			}
		}
		return true, 0
	case strings.HasPrefix(id, "set_header_value/request/"):
		set(kindRequest, strings.TrimPrefix(id, "set_header_value/request/")+"-header", "value")
		return true, 0
	case strings.HasPrefix(id, "add_header_value/request/"):
		add(kindRequest, strings.TrimPrefix(id, "add_header_value/request/")+"-header", "value")
		return true, 0
	case strings.HasPrefix(id, "remove_header/request/"):
		remove(kindRequest, strings.TrimPrefix(id, "remove_header/request/")+"-header")
		return true, 0
	case strings.HasPrefix(id, "read_body/request/"):
		size := map[string]int{"empty": 0, "small": 5, "medium": 2048, "large": 4096, "xlarge": 5000}[strings.TrimPrefix(id, "read_body/request/")]
		if got := body(kindRequest); got != strings.Repeat("a", size) {
			fail(fmt.Sprintf("read_body/request: want %d bytes, have %d", size, len(got)))
			return
		}
		return true, 0
	case id == "get_source_addr":
		addr := get(getSourceAddr)
		raw := strings.Split(addr, ":")
		if len(raw) != 2 || raw[0] != "127.0.0.1" || len(raw[1]) == 0 || len(raw[1]) > 5 {
			fail("get_source_addr: unexpected " + addr)
			return
		}
		return true, 0
	}
	fail("unknown x-httpwasm-tck-testid")
	return false, 0
}

func fail(msg string) {
	setStatusCode(500)
	set(kindResponse, "x-httpwasm-tck-failed", msg)
}
