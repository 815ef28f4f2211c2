package hcl

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// evalContext offers the functions env(), file() and jsonencode(), and the variables upstream and
// redis, whose attributes are the declared block names (references are decoded by name, see
// decoder.reference; the values only make other uses type-check).
func evalContext(dir string, upstreams, redis map[string]bool, read *[]string) *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"upstream": namesObject("upstream", upstreams),
			"redis":    namesObject("redis", redis),
		},
		Functions: map[string]function.Function{
			"env":        envFunc,
			"file":       fileFunc(dir, read),
			"jsonencode": stdlib.JSONEncodeFunc,
		},
	}
}

func namesObject(root string, names map[string]bool) cty.Value {
	attrs := map[string]cty.Value{}
	for n := range names {
		attrs[n] = cty.StringVal(root + "." + n)
	}
	return cty.ObjectVal(attrs)
}

// envFunc is env("NAME") or env("NAME", "default"): an unset NAME without a default is an error.
var envFunc = function.New(&function.Spec{
	Description: "Returns the value of an environment variable of the gateway process.",
	Params:      []function.Parameter{{Name: "name", Type: cty.String}},
	VarParam:    &function.Parameter{Name: "default", Type: cty.String},
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one default")
		}
		name := args[0].AsString()
		if v, ok := os.LookupEnv(name); ok {
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, fmt.Errorf("environment variable %s is not set; set it, or give a default: env(%q, \"\")", name, name)
	},
})

// fileFunc reads a file relative to the config's folder, and adds its path to read.
func fileFunc(dir string, read *[]string) function.Function {
	return function.New(&function.Spec{
		Description: "Reads a file, relative to the config file's folder, as a string.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			*read = append(*read, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("reading %s: %w", p, err)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}
