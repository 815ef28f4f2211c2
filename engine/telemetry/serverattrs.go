package telemetry

import (
	"github.com/sluice-gateway/sluice/engine"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// serverFixed is a server span's attributes that depend only on its pipeline, the request's
// method, scheme and protocol version (http.request.method, url.scheme,
// network.protocol.version, http.route, sluice.pipeline), and their encoding: a span carries
// them as fixed attributes (spanRecord.fixed), made once per combination a pipeline serves.
type serverFixed struct {
	fixed []attribute.KeyValue
	pb    []byte
}

// The methods the conventions list (knownMethod), by index for pipeInfo.server.
var knownMethods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

// protoVersions are network.protocol.version's values (protoVersion), by index.
var protoVersions = [...]string{"1.1", "2", "1.0"}

func methodIndex(m string) int {
	for i, k := range knownMethods {
		if k == m {
			return i
		}
	}
	return -1
}

func versionIndex(v string) int {
	switch v {
	case "2":
		return 1
	case "1.0":
		return 2
	}
	return 0
}

// serverAttrsFirst appends the attributes serverFixed holds.
func serverAttrsFirst(dst []attribute.KeyValue, method, scheme, version string, pi *pipeInfo, p *engine.Pipeline) []attribute.KeyValue {
	dst = append(dst, semconv.HTTPRequestMethodKey.String(method), semconv.URLScheme(scheme), semconv.NetworkProtocolVersion(version))
	if p != nil {
		dst = append(dst, semconv.HTTPRoute(pi.route), attrPipeline.String(p.Name))
	}
	return dst
}

// serverFixed returns the fixed attributes of the pipeline's server spans for a known method,
// made on first use.
func (pi *pipeInfo) serverFixed(p *engine.Pipeline, mi int, tls bool, vi int) *serverFixed {
	s := 0
	if tls {
		s = 1
	}
	slot := &pi.server[mi][s][vi]
	if f := slot.Load(); f != nil {
		return f
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	f := &serverFixed{fixed: serverAttrsFirst(nil, knownMethods[mi], scheme, protoVersions[vi], pi, p)}
	for _, kv := range f.fixed {
		f.pb = appendKeyValue(f.pb, fSpanAttributes, kv)
	}
	if !slot.CompareAndSwap(nil, f) {
		return slot.Load()
	}
	return f
}
