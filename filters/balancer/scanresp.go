package balancer

import (
	"github.com/sluice-gateway/sluice/engine/ascii"
	"github.com/sluice-gateway/sluice/engine/fhlayout"
	"github.com/valyala/fasthttp"
)

// Bit of scanHop's mask for Trailer (hopHeaders[2]).
const hasTrailer = 1 << 2

// scanResponseHop is scanHop(h.All(), conn) for an upstream's response, without the walk over the
// fields fasthttp keeps apart. All yields Content-Length, Content-Type, Content-Encoding, Server
// and each Set-Cookie before the ordinary fields, none of them a scanned name, and builds the
// Trailer value (an allocation) only for scanHop to see the name; Connection: close, kept as a
// flag, comes last. Here the ordinary fields are read from fasthttp's list (engine/fhlayout), and
// Trailer and Connection: close are told by the announced names and the flag. The mask and the
// Connection values are what scanHop gives, except that a close flag beside a Connection field
// already naming close adds "close," once more, which removeConnectionTokens skips anyway
// (TestScanResponseHopMatchesScanHop).
func scanResponseHop(h *fasthttp.ResponseHeader, conn []byte) ([]byte, uint32) {
	var mask uint32
	fields := *fhlayout.ResponseFields(h)
	for i := range fields {
		k := fields[i].Key
		if len(k) >= len(scannedByLen) {
			continue
		}
		for _, n := range scannedByLen[len(k)] {
			if ascii.EqualFoldLower(k, scanned[n]) {
				mask |= 1 << n
				if n == 0 {
					conn = append(append(conn, fields[i].Value...), ',')
				}
			}
		}
	}
	if len(*fhlayout.ResponseTrailerNames(h)) > 0 {
		mask |= hasTrailer
	}
	if h.ConnectionClose() {
		mask |= hasConnection
		conn = append(conn, "close,"...)
	}
	return conn, mask
}

// The bit hasTrailer stands for.
var _ = func() bool {
	if hopHeaders[2] != "Trailer" {
		panic("balancer: hasTrailer does not match hopHeaders")
	}
	return true
}()
