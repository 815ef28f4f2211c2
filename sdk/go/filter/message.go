package filter

import "github.com/sluice-gateway/sluice/sdk/go/internal/abi"

// Request is the current request. Its methods call the host; the zero value is ready to use.
type Request struct{}

// Method returns the request method.
func (Request) Method() string { return string(get(abi.GetMethod)) }

// MethodBytes returns the method as a view valid until the next call into this package.
func (Request) MethodBytes() []byte { return get(abi.GetMethod) }

// SetMethod replaces the method.
func (Request) SetMethod(m string) { abi.SetMethod(m) }

// URI returns the request URI as received: path and query, still percent-encoded.
func (Request) URI() string { return string(get(abi.GetURI)) }

// URIBytes returns the URI as a view valid until the next call into this package.
func (Request) URIBytes() []byte { return get(abi.GetURI) }

// SetURI replaces path and query; uri must be percent-encoded.
func (Request) SetURI(uri string) { abi.SetURI(uri) }

// Path returns the URI's path (no query), still percent-encoded.
func (r Request) Path() string {
	u := r.URIBytes()
	for i, c := range u {
		if c == '?' {
			return string(u[:i])
		}
	}
	return string(u)
}

// ProtocolVersion returns e.g. "HTTP/1.1".
func (Request) ProtocolVersion() string { return string(get(abi.GetProtocolVersion)) }

// SourceAddr returns the client's address and port, e.g. "1.2.3.4:5678".
func (Request) SourceAddr() string { return string(get(abi.GetSourceAddr)) }

// Header returns the request headers.
func (Request) Header() Header { return Header{abi.KindRequest} }

// Trailer returns the request trailers (needs FeatureTrailers).
func (Request) Trailer() Header { return Header{abi.KindRequestTrailers} }

// Body returns the request body.
func (Request) Body() Body { return Body{abi.KindRequest} }

// Response is the response: written by the filter before next, or produced upstream.
type Response struct{}

// StatusCode returns the status code (the upstream's, in HandleResponse).
func (Response) StatusCode() uint32 { return abi.GetStatusCode() }

// SetStatusCode sets the status code; in HandleResponse this needs FeatureBufferResponse.
func (Response) SetStatusCode(code uint32) { abi.SetStatusCode(code) }

// Header returns the response headers.
func (Response) Header() Header { return Header{abi.KindResponse} }

// Trailer returns the response trailers (needs FeatureTrailers).
func (Response) Trailer() Header { return Header{abi.KindResponseTrailers} }

// Body returns the response body.
func (Response) Body() Body { return Body{abi.KindResponse} }

// Header is a request or response header set. Names are case-insensitive.
type Header struct{ kind uint32 }

// Get returns the first value of name.
func (h Header) Get(name string) (string, bool) {
	v, ok := h.GetBytes(name)
	return string(v), ok
}

// GetBytes returns the first value of name as a view valid until the next call into this package.
func (h Header) GetBytes(name string) ([]byte, bool) {
	list, n := getList(func(b []byte) uint64 { return abi.GetHeaderValues(h.kind, name, b) })
	if n == 0 {
		return nil, false
	}
	for i, c := range list {
		if c == 0 {
			return list[:i], true
		}
	}
	return list, true
}

// Has reports whether the header is present, without copying its values.
func (h Header) Has(name string) bool { return abi.GetHeaderValues(h.kind, name, nil)>>32 > 0 }

// Values returns every value of name.
func (h Header) Values(name string) []string {
	list, n := getList(func(b []byte) uint64 { return abi.GetHeaderValues(h.kind, name, b) })
	out := make([]string, 0, n)
	splitNUL(list, func(v []byte) { out = append(out, string(v)) })
	return out
}

// Names returns every header name, lower-cased.
func (h Header) Names() []string {
	list, n := getList(func(b []byte) uint64 { return abi.GetHeaderNames(h.kind, b) })
	out := make([]string, 0, n)
	splitNUL(list, func(v []byte) { out = append(out, string(v)) })
	return out
}

// Set replaces every value of name with value.
func (h Header) Set(name, value string) { abi.SetHeaderValue(h.kind, name, value) }

// SetBytes is Set with a byte-slice value (no copy).
func (h Header) SetBytes(name string, value []byte) { abi.SetHeaderValue(h.kind, name, str(value)) }

// Add appends a value.
func (h Header) Add(name, value string) { abi.AddHeaderValue(h.kind, name, value) }

// Remove deletes every value of name.
func (h Header) Remove(name string) { abi.RemoveHeader(h.kind, name) }

// Body is a request or response body. Reads continue where the previous read stopped.
type Body struct{ kind uint32 }

// Read reads the next bytes into p; eof reports the body is exhausted (n may still be > 0).
func (b Body) Read(p []byte) (n int, eof bool) {
	if len(p) == 0 {
		return 0, false
	}
	el := abi.ReadBody(b.kind, p)
	return int(uint32(el)), el>>32 == 1
}

// ReadAll reads the rest of the body. To read the request body without taking it from the
// upstream, enable FeatureBufferRequest; to read the upstream's body, FeatureBufferResponse.
func (b Body) ReadAll() []byte {
	out := make([]byte, 0, 4096)
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, eof := b.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if eof {
			return out
		}
	}
}

// Write appends p to the body; the first write of a phase replaces the existing body.
func (b Body) Write(p []byte) { abi.WriteBody(b.kind, p) }

// WriteString is Write for a string (no copy).
func (b Body) WriteString(s string) {
	abi.WriteBody(b.kind, bytesOf(s))
}
