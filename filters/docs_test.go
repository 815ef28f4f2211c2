package filters_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-gateway/sluice/filters"
)

// modulePath prefixes the package path of every kind's config type.
const modulePath = "github.com/sluice-gateway/sluice/"

// TestAttributesDocumented compares every attribute and block a registered filter kind (and the
// upstream block) decodes, read from the config structs' hcl tags, with the attributes its
// package's README.md documents: the rows of the tables in its "## Attributes" section whose
// first cell is a name in backquotes (`name`, and `block.name` inside a nested block). An
// attribute in code but not in the README, or in the README but no longer in code, fails.
func TestAttributesDocumented(t *testing.T) {
	r := filters.Builtin()
	type doc struct {
		what string
		cfg  any
	}
	docs := map[string][]doc{} // README path → the configs it documents
	for _, kind := range r.Kinds() {
		k, _ := r.Filter(kind)
		cfg := k.NewConfig()
		docs[readmeOf(t, cfg)] = append(docs[readmeOf(t, cfg)], doc{fmt.Sprintf("filter %q", kind), cfg})
	}
	if u := r.Upstream(); u != nil {
		cfg := u.NewConfig()
		docs[readmeOf(t, cfg)] = append(docs[readmeOf(t, cfg)], doc{"upstream block", cfg})
	}
	paths := make([]string, 0, len(docs))
	for p := range docs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, readme := range paths {
		t.Run(readme, func(t *testing.T) {
			inCode := map[string]bool{}
			var whats []string
			for _, d := range docs[readme] {
				hclNames(reflect.TypeOf(d.cfg), "", inCode)
				whats = append(whats, d.what)
			}
			b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(readme)))
			if err != nil {
				t.Fatalf("%s has no README (%v): document its attributes in a table under \"## Attributes\"", strings.Join(whats, ", "), err)
			}
			inDocs := documented(b)
			var undocumented, stale []string
			for n := range inCode {
				if !inDocs[n] {
					undocumented = append(undocumented, n)
				}
			}
			for n := range inDocs {
				if !inCode[n] {
					stale = append(stale, n)
				}
			}
			sort.Strings(undocumented)
			sort.Strings(stale)
			if len(undocumented) > 0 {
				t.Errorf("%s: attributes of %s missing from its \"## Attributes\" tables (a row starting | `name` |): %s",
					readme, strings.Join(whats, ", "), strings.Join(undocumented, ", "))
			}
			if len(stale) > 0 {
				t.Errorf("%s: documents attributes the code no longer has: %s", readme, strings.Join(stale, ", "))
			}
		})
	}
}

// readmeOf is the README of the package that declares cfg's type, relative to the module root.
func readmeOf(t *testing.T, cfg any) string {
	pkg := reflect.TypeOf(cfg).Elem().PkgPath()
	rel, ok := strings.CutPrefix(pkg, modulePath)
	if !ok {
		t.Fatalf("config type %T is declared outside the module", cfg)
	}
	return rel + "/README.md"
}

// hclNames adds the names of typ's hcl-tagged fields to out, nested blocks as "block.name".
func hclNames(typ reflect.Type, prefix string, out map[string]bool) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, ok := f.Tag.Lookup("hcl")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "label" || opts == "remain" {
			continue
		}
		out[prefix+name] = true
		if opts == "block" {
			hclNames(f.Type, prefix+name+".", out)
		}
	}
}

var (
	attrSection = regexp.MustCompile(`^##\s+Attributes\b`)
	attrRow     = regexp.MustCompile("^\\|\\s*`([a-z0-9_]+(?:\\.[a-z0-9_]+)*)`\\s*\\|")
)

// documented returns the names in the first cells of the "## Attributes" sections' table rows.
func documented(readme []byte) map[string]bool {
	out := map[string]bool{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = attrSection.MatchString(line)
			continue
		}
		if m := attrRow.FindStringSubmatch(line); in && m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// TestDocPathsExist checks that the files and folders README.md, DESIGN.md and the filter
// READMEs name exist: relative links, backquoted paths (`engine/framing.go`, globs such as
// `hcl/testdata/errors/*.hcl`, a bare `pool.go` anywhere in the tree) and the folders of the
// "## Layout" blocks.
func TestDocPathsExist(t *testing.T) {
	root := ".."
	docs := []string{"README.md", "DESIGN.md"}
	readmes, _ := filepath.Glob(filepath.Join(root, "filters", "*", "README.md"))
	for _, p := range readmes {
		rel, _ := filepath.Rel(root, p)
		docs = append(docs, filepath.ToSlash(rel))
	}
	names := map[string]bool{} // every file name in the tree, for bare names
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		names[d.Name()] = true
		return nil
	})
	for _, doc := range docs {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, ref := range docPaths(b) {
			if !pathExists(root, filepath.Dir(doc), ref, names) {
				t.Errorf("%s:%d names %s, which does not exist", doc, ref.line, ref.path)
			}
		}
	}
}

type pathRef struct {
	path   string
	line   int
	link   bool   // a Markdown link: relative to the document
	base   string // a Layout block's line: the folder its first entry names
	layout bool
}

var (
	mdLink     = regexp.MustCompile(`\]\(([^)#\s]+)(?:#[^)]*)?\)`)
	backquoted = regexp.MustCompile("`([^`\\s]+)`")
	// A repository path: a top-level folder of the tree, then more segments; globs allowed.
	repoPath   = regexp.MustCompile(`^(?:cmd|engine|filters|hcl|sdk|examples|testbed|\.ci)(?:/[A-Za-z0-9_.*-]+)*/?$`)
	sourceFile = regexp.MustCompile(`^[A-Za-z0-9_.-]+\.(?:go|md|hcl|sh|wat|pgo|c|h|rs|ts|mjs)$`)
	// A folder named alone (`bench/`): relative to the document or the repository root.
	folder    = regexp.MustCompile(`^[a-z][a-z0-9_]*/$`)
	layoutDir = regexp.MustCompile(`^[a-z][a-z0-9_]*(?:/[a-z0-9_]+)*/$`)
)

// docPaths extracts the path references of a Markdown document.
func docPaths(b []byte) []pathRef {
	var out []pathRef
	inFence, layout := false, false
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		if strings.HasPrefix(line, "## ") {
			section = line
		}
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			layout = inFence && strings.HasPrefix(section, "## Layout")
			continue
		}
		if layout {
			fields := strings.Fields(line)
			for j, f := range fields {
				if layoutDir.MatchString(f) {
					out = append(out, pathRef{path: f, line: n, layout: true, base: fields[0]})
				} else if j == 0 {
					break
				}
			}
			continue
		}
		if inFence {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			if !strings.Contains(m[1], "://") && !strings.HasPrefix(m[1], "mailto:") {
				out = append(out, pathRef{path: m[1], line: n, link: true})
			}
		}
		for _, m := range backquoted.FindAllStringSubmatch(line, -1) {
			if repoPath.MatchString(m[1]) || sourceFile.MatchString(m[1]) || folder.MatchString(m[1]) {
				out = append(out, pathRef{path: m[1], line: n})
			}
		}
	}
	return out
}

func pathExists(root, docDir string, ref pathRef, names map[string]bool) bool {
	exists := func(p string) bool {
		m, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(p)))
		return len(m) > 0
	}
	switch {
	case ref.link:
		return exists(filepath.ToSlash(filepath.Join(docDir, ref.path)))
	case ref.layout:
		return exists(ref.path) || exists(ref.base+ref.path)
	case !strings.Contains(ref.path, "/"):
		return names[ref.path] || exists(ref.path)
	}
	return exists(ref.path) || exists(filepath.ToSlash(filepath.Join(docDir, ref.path)))
}
