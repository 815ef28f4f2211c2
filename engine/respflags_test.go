package engine

import "testing"

func TestRespFlagsText(t *testing.T) {
	cases := []struct {
		f    RespFlags
		want string
	}{
		{0, "-"},
		{FlagUpstreamTimeout, "UT"},
		{FlagNoHealthyUpstream | FlagRateLimited, "UH,RL"},
		{FlagWasmFailure, "WF"},
	}
	for _, tc := range cases {
		if got := string(tc.f.AppendText(nil)); got != tc.want {
			t.Errorf("%b: got %q, want %q", tc.f, got, tc.want)
		}
	}
	if len(respFlagNames) != 15 || FlagWasmFailure != 1<<14 {
		t.Fatalf("flag names and constants out of step")
	}
}
