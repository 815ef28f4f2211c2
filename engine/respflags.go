package engine

// RespFlags say why the gateway answered as it did, as Envoy's response flags do: the access log
// prints them, metrics count failures by them and the tracer derives error.type from them. Each
// stage that decides an outcome adds its flag with Ctx.AddFlags; zero means nothing notable.
type RespFlags uint32

const (
	FlagNoHealthyUpstream RespFlags = 1 << iota // UH: no target could take the request
	FlagUpstreamConnFail                        // UF: connecting to the upstream failed
	FlagUpstreamTimeout                         // UT: the upstream did not answer in time
	FlagUpstreamReset                           // UR: the upstream reset or closed mid-response
	FlagUpstreamTLS                             // UTLS: the TLS handshake with the upstream failed
	FlagUpstream5xx                             // U5: the upstream answered with a 5xx
	FlagCircuitOpen                             // UO: a circuit breaker limit refused the request
	FlagRateLimited                             // RL: a rate limit refused the request
	FlagUnauthorized                            // UAEX: authentication or authorization refused it
	FlagFaultInjected                           // FI: the fault filter aborted or delayed it
	FlagNoRoute                                 // NR: no pipeline matched
	FlagBadRequest                              // DPE: the request was malformed or over a limit
	FlagClientGone                              // DC: the client went away before the answer
	FlagStreamTimeout                           // SI: a stream idled or ran past its limit
	FlagWasmFailure                             // WF: a Wasm guest trapped or timed out
)

var respFlagNames = [...]string{"UH", "UF", "UT", "UR", "UTLS", "U5", "UO", "RL", "UAEX", "FI", "NR", "DPE", "DC", "SI", "WF"}

// AppendText appends the flags as Envoy prints them: short names joined by commas, "-" for none.
func (f RespFlags) AppendText(dst []byte) []byte {
	if f == 0 {
		return append(dst, '-')
	}
	first := true
	for i, name := range respFlagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, name...)
		first = false
	}
	return dst
}

// AddFlags records why the request ended as it did; flags accumulate over the request.
func (c *Ctx) AddFlags(f RespFlags) { c.Flags |= f }
