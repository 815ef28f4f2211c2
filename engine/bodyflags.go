package engine

import (
	"errors"
	"net"
)

// BodyErrorFlags are the response flags of a request whose streamed body failed with err (the
// companion of BodyErrorStatus): SI when it ran past stream_timeout or stalled, DPE when it
// was too large or malformed.
func BodyErrorFlags(err error) RespFlags {
	var ne net.Error
	if errors.Is(err, ErrStreamTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return FlagStreamTimeout
	}
	return FlagBadRequest
}
