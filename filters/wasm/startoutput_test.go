package wasm

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gateway/sluice/engine"
)

// A guest that fails while starting has its stderr and warn/error log messages quoted in the
// build error (what `sluice validate` and `sluice run` print), bounded, whether the filter has a
// timeout or unlimited_time (0s below).
func TestStartFailureQuotesGuest(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Second} {
		for _, validating := range []bool{false, true} {
			t.Run(fmt.Sprintf("timeout=%v/validating=%v", timeout, validating), func(t *testing.T) {
				f, _, err := tryFilter(t, "start_says", validating, func(c *Config) {
					c.Timeout, c.UnlimitedTime = engine.Duration(timeout), timeout == 0
				})
				if err == nil {
					f.Close()
					t.Fatal("built without error")
				}
				msg := err.Error()
				for _, want := range []string{
					"unreachable",
					"the guest wrote",
					`panic: config: bad "keys"`, // stderr, first
					"bytes …]",                  // the filler's middle is dropped
					`config: unknown key "heder"`,
				} {
					if !strings.Contains(msg, want) {
						t.Errorf("error lacks %q:\n%s", want, msg)
					}
				}
				if strings.Contains(msg, "info: not kept") {
					t.Errorf("an info-level message is quoted:\n%s", msg)
				}
				said := msg[strings.Index(msg, "the guest wrote"):]
				if len(said) > startOutputLimit+200 {
					t.Errorf("quoted %d bytes, want about %d at most", len(said), startOutputLimit)
				}
			})
		}
	}
}

func TestStartOutputKeepsHeadAndTail(t *testing.T) {
	var o startOutput
	for i := range 200 {
		o.write(fmt.Appendf(nil, "line %03d\n", i))
	}
	for _, b := range []byte("byte by byte\n") {
		o.write([]byte{b})
	}
	o.write([]byte("line 199\n"))
	s := o.text()
	if !strings.HasPrefix(s, "line 000\n") || !strings.HasSuffix(s, "line 199") {
		t.Errorf("head or tail lost:\n%s", s)
	}
	const total = 201*9 + 13
	if o.dropped != total-startOutputLimit || len(o.head)+len(o.tail) != startOutputLimit {
		t.Errorf("kept %d+%d, dropped %d of %d", len(o.head), len(o.tail), o.dropped, total)
	}
	if !strings.Contains(s, "byte by byte\nline 199") {
		t.Errorf("single-byte writes lost:\n%s", s)
	}
	var big startOutput
	big.write(make([]byte, 10000))
	if big.dropped != 10000-startOutputLimit || len(big.text()) > startOutputLimit+40 {
		t.Errorf("one large write: dropped %d, kept %d", big.dropped, len(big.head)+len(big.tail))
	}
	var empty startOutput
	if err := empty.wrap(errTimeout); err != errTimeout {
		t.Errorf("nothing said: %v, want the error unchanged", err)
	}
}
