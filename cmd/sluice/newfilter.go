package main

import (
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// The project templates (templates/project/<lang>, rendered with text/template) and a mirror of
// the guest SDK sources (templates/sdk/<lang>, copied verbatim): a scaffolded project vendors its
// SDK, so it builds without a Sluice checkout. Every file ends in .tmpl so the Go tool never
// treats the mirrored Go sources as packages of this module. TestSDKMirror keeps the mirror equal
// to sdk/; refresh it with:
//
//go:generate go test -run TestSDKMirror -update-sdk-mirror .
//go:embed all:templates
var templates embed.FS

func init() {
	commands["new-filter"] = command{summary: "scaffold a Wasm filter project (Go, Rust, C or AssemblyScript)", run: runNewFilter}
}

// language describes one scaffold.
type language struct {
	name      string // shown in the README
	sdkDir    string // where the SDK mirror goes inside the project
	source    string // the file to edit
	toolchain string // README paragraph on what to install
}

var languages = map[string]language{
	"go": {"Go", "sluice-sdk-go", "`main.go`",
		"Needs standard Go 1.24 or later (`GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`); TinyGo is not needed."},
	"rust": {"Rust", "sluice-filter", "`src/lib.rs`",
		"Needs a rustc with the `wasm32-unknown-unknown` target: on Debian `apt-get install rustc libstd-rust-dev-wasm32` " +
			"(the Makefile prefers `/usr/bin/rustc`), or `rustup target add wasm32-unknown-unknown` and `RUSTC=rustc make`. " +
			"`cargo build --release --target wasm32-unknown-unknown` and `cargo test` work too."},
	"c": {"C", "sluice", "`filter.c`",
		"Needs clang and lld (Debian: `apt-get install clang lld`); `make wasi` builds against wasi-libc instead " +
			"(`apt-get install wasi-libc libclang-rt-14-dev-wasm32`). Tests compile natively with `cc`."},
	"assemblyscript": {"AssemblyScript", "sluice", "`filter.ts`",
		"Needs node and npm (Debian: `apt-get install nodejs npm`); `make` installs the AssemblyScript compiler into `node_modules/`."},
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func runNewFilter(args []string) int {
	fset := flag.NewFlagSet("new-filter", flag.ContinueOnError)
	lang := fset.String("lang", "go", "language: go, rust, c or assemblyscript")
	dir := fset.String("dir", "", "folder to create (default ./NAME)")
	fset.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: sluice new-filter [--lang go|rust|c|assemblyscript] [--dir DIR] NAME\n\n"+
			"Creates a filter project that builds (make) and passes its own test (make test).")
		fset.PrintDefaults()
	}
	// Accept flags after NAME too: "sluice new-filter myfilter --lang rust".
	var names []string
	for rest := args; ; {
		if status, ok := parseFlags(fset, rest); !ok {
			return status
		}
		if fset.NArg() == 0 {
			break
		}
		names = append(names, fset.Arg(0))
		rest = fset.Args()[1:]
	}
	if len(names) != 1 {
		fset.Usage()
		return 2
	}
	name := names[0]
	if *dir == "" {
		*dir = name
	}
	if err := newFilter(*dir, *lang, name); err != nil {
		fmt.Fprintln(os.Stderr, "sluice new-filter:", err)
		return 1
	}
	fmt.Printf("created %s (%s filter %q)\n  cd %s && make && make test\n", *dir, *lang, name, *dir)
	return 0
}

// projectData is what the project templates see.
type projectData struct {
	Name, Ident, Header                       string
	Lang, LangName, SDKDir, Source, Toolchain string
}

// newFilter writes a new filter project for lang into dir, which must not exist or be empty.
func newFilter(dir, lang, name string) error {
	l, ok := languages[lang]
	if !ok {
		return fmt.Errorf("unknown --lang %q: want go, rust, c or assemblyscript", lang)
	}
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid name %q: use lower-case letters, digits and '-', starting with a letter", name)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data := projectData{
		Name: name, Ident: strings.ReplaceAll(name, "-", "_"), Header: "x-" + name,
		Lang: lang, LangName: l.name, SDKDir: l.sdkDir, Source: l.source, Toolchain: l.toolchain,
	}
	if err := renderTree(path.Join("templates/project", lang), dir, data); err != nil {
		return err
	}
	if err := renderFile("templates/project/README.md.tmpl", filepath.Join(dir, "README.md"), data); err != nil {
		return err
	}
	return copyTree(path.Join("templates/sdk", lang), filepath.Join(dir, l.sdkDir))
}

func renderTree(root, dst string, data projectData) error {
	return fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		return renderFile(p, filepath.Join(dst, filepath.FromSlash(rel)), data)
	})
}

func renderFile(src, dst string, data projectData) error {
	text, err := templates.ReadFile(src)
	if err != nil {
		return err
	}
	out, err := expand(string(text), data)
	if err != nil {
		return fmt.Errorf("template %s: %w", src, err)
	}
	return writeFile(dst, []byte(out))
}

// expand replaces each {{.Field}} of a project template with that field of data; any other
// action, or an unknown field, is an error. The templates only substitute fields, and
// text/template is not used for it: its reflective method calls (reflect.Value.MethodByName)
// make the linker keep every exported method of every type in the binary, which made sluice
// several MiB larger, and on Linux with large folios a running sluice maps its read-only
// segments in 2 MiB pages, so that size is idle RSS (RATIONALE: "Where did the idle RSS go…").
func expand(text string, data projectData) (string, error) {
	fields := map[string]string{
		"Name": data.Name, "Ident": data.Ident, "Header": data.Header, "Lang": data.Lang,
		"LangName": data.LangName, "SDKDir": data.SDKDir, "Source": data.Source, "Toolchain": data.Toolchain,
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "{{")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		j := strings.Index(text[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("unclosed action %.20q", text[i:])
		}
		action := text[i+2 : i+j]
		v, ok := fields[strings.TrimPrefix(action, ".")]
		if !ok || !strings.HasPrefix(action, ".") {
			return "", fmt.Errorf("unknown action {{%s}}: the project templates substitute only {{.Field}} of projectData", action)
		}
		b.WriteString(text[:i])
		b.WriteString(v)
		text = text[i+j+2:]
	}
}

// copyTree copies the SDK mirror verbatim (SDK sources are not templates).
func copyTree(root, dst string) error {
	return fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		return writeFile(filepath.Join(dst, filepath.FromSlash(rel)), b)
	})
}

func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}
