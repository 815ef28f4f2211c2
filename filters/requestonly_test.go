package filters_test

import (
	"testing"

	"github.com/sluice-gateway/sluice/engine"
	"github.com/sluice-gateway/sluice/filters/authorize"
	"github.com/sluice-gateway/sluice/filters/basicauth"
	"github.com/sluice-gateway/sluice/filters/fault"
	"github.com/sluice-gateway/sluice/filters/forwardauth"
	"github.com/sluice-gateway/sluice/filters/headers"
	"github.com/sluice-gateway/sluice/filters/ipfilter"
	"github.com/sluice-gateway/sluice/filters/jwt"
	"github.com/sluice-gateway/sluice/filters/keyauth"
	"github.com/sluice-gateway/sluice/filters/redirect"
	"github.com/sluice-gateway/sluice/filters/respond"
	"github.com/sluice-gateway/sluice/filters/rewrite"
)

// TestRequestOnlyKinds: the kinds whose response phase does nothing declare it
// (engine.RequestOnly), so the pipeline skips it; a kind with a response phase does not.
func TestRequestOnlyKinds(t *testing.T) {
	for name, f := range map[string]engine.Filter{
		"fault": &fault.Filter{}, "basic_auth": &basicauth.Filter{}, "authorize": &authorize.Filter{},
		"jwt": &jwt.Filter{}, "respond": &respond.Filter{}, "forward_auth": &forwardauth.Filter{},
		"key_auth": &keyauth.Filter{}, "ip_filter": &ipfilter.Filter{}, "redirect": &redirect.Filter{},
		"rewrite": &rewrite.Filter{},
	} {
		if !(engine.Stage{Kind: name, Filter: f}).RequestOnly() {
			t.Errorf("%s is not engine.RequestOnly", name)
		}
	}
	if (engine.Stage{Kind: "headers", Filter: &headers.Filter{}}).RequestOnly() {
		t.Error("headers, which edits responses, is engine.RequestOnly")
	}
}
