package engine

import (
	"fmt"
	"sort"
	"sync"

	"github.com/agext/levenshtein"
)

// Route keys: a native filter routes on a value it computed by declaring a route key and setting
// it on the request; a pipeline's `match { key "NAME" { exact = "…" } }` tests it when a
// `route` block routes the request again.
var routeKeys = struct {
	sync.Mutex
	byName map[string]Key[string]
}{byName: map[string]Key[string]{}}

// NewRouteKey declares a Key[string] that match blocks can test by name (`key "NAME" { … }`).
// Call it from a package-level var declaration; a name declared twice panics. Set a constant or
// long-lived string: storing a string made per request allocates.
func NewRouteKey(name string) Key[string] {
	routeKeys.Lock()
	defer routeKeys.Unlock()
	if _, dup := routeKeys.byName[name]; dup {
		panic(fmt.Sprintf("engine: route key %q declared twice", name))
	}
	k := NewKey[string](name)
	routeKeys.byName[name] = k
	return k
}

// RouteKeyNamed returns the route key declared with name.
func RouteKeyNamed(name string) (Key[string], bool) {
	routeKeys.Lock()
	defer routeKeys.Unlock()
	k, ok := routeKeys.byName[name]
	return k, ok
}

// routeKeyHint suggests a declared route key close to name, or lists them.
func routeKeyHint(name string) string {
	routeKeys.Lock()
	defer routeKeys.Unlock()
	names := make([]string, 0, len(routeKeys.byName))
	for n := range routeKeys.byName {
		if levenshtein.Distance(name, n, nil) < 3 {
			return fmt.Sprintf("; did you mean %q?", n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return " (no filter in this build declares one)"
	}
	sort.Strings(names)
	return fmt.Sprintf(" (declared: %v)", names)
}
