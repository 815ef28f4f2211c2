// Command sbom writes an SPDX 2.3 JSON software bill of materials for release binaries of Go
// programs, from the build information Go records in each binary (debug/buildinfo: what
// `go version -m` prints): the main module, every module linked in with its version and go.sum
// hash, the Go toolchain, and each binary with its SHA-256. Nothing is downloaded. The output
// depends only on its inputs (the creation time is SOURCE_DATE_EPOCH, passed as -time), so a
// reproducible build has a reproducible SBOM.
//
//	sbom -version v0.1.0 -commit <sha> -time <unix seconds> -o sluice.spdx.json BINARY…
package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	version := flag.String("version", "dev", "the release's version")
	commit := flag.String("commit", "", "the commit the binaries were built from")
	epoch := flag.String("time", "0", "the creation time, in Unix seconds (SOURCE_DATE_EPOCH)")
	out := flag.String("o", "", "output file (default stdout)")
	flag.Parse()
	sec, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil {
		fail(fmt.Errorf("-time %q: %w", *epoch, err))
	}
	doc, err := build(*version, *commit, time.Unix(sec, 0), flag.Args())
	if err != nil {
		fail(err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		fail(err)
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sbom:", err)
	os.Exit(1)
}

// The SPDX 2.3 JSON fields written (https://spdx.github.io/spdx-spec/v2.3/).
type (
	Document struct {
		SPDXVersion       string         `json:"spdxVersion"`
		DataLicense       string         `json:"dataLicense"`
		SPDXID            string         `json:"SPDXID"`
		Name              string         `json:"name"`
		DocumentNamespace string         `json:"documentNamespace"`
		CreationInfo      CreationInfo   `json:"creationInfo"`
		DocumentDescribes []string       `json:"documentDescribes"`
		Packages          []Package      `json:"packages"`
		Relationships     []Relationship `json:"relationships"`
	}
	CreationInfo struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	}
	Package struct {
		SPDXID           string        `json:"SPDXID"`
		Name             string        `json:"name"`
		VersionInfo      string        `json:"versionInfo,omitempty"`
		PackageFileName  string        `json:"packageFileName,omitempty"`
		DownloadLocation string        `json:"downloadLocation"`
		FilesAnalyzed    bool          `json:"filesAnalyzed"`
		Checksums        []Checksum    `json:"checksums,omitempty"`
		LicenseConcluded string        `json:"licenseConcluded"`
		LicenseDeclared  string        `json:"licenseDeclared"`
		CopyrightText    string        `json:"copyrightText"`
		PrimaryPurpose   string        `json:"primaryPackagePurpose,omitempty"`
		ExternalRefs     []ExternalRef `json:"externalRefs,omitempty"`
		Comment          string        `json:"comment,omitempty"`
	}
	Checksum struct {
		Algorithm string `json:"algorithm"`
		Value     string `json:"checksumValue"`
	}
	ExternalRef struct {
		Category string `json:"referenceCategory"`
		Type     string `json:"referenceType"`
		Locator  string `json:"referenceLocator"`
	}
	Relationship struct {
		Element string `json:"spdxElementId"`
		Type    string `json:"relationshipType"`
		Related string `json:"relatedSpdxElement"`
	}
)

const mainModule = "github.com/sluice-gateway/sluice"

// build describes the binaries: one package per binary (with its checksum, its platform and
// Go version in the comment), which CONTAINS the modules linked into it (each described once).
func build(version, commit string, created time.Time, binaries []string) (*Document, error) {
	if len(binaries) == 0 {
		return nil, fmt.Errorf("no binaries given")
	}
	ns := "https://github.com/sluice-gateway/sluice/releases/" + version + "/sbom"
	if commit != "" {
		ns += "-" + commit
	}
	doc := &Document{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              "sluice-" + version,
		DocumentNamespace: ns,
		CreationInfo: CreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: sluice testbed/ship/cmd/sbom", "Organization: Sluice"},
		},
	}
	modules := map[string]Package{} // by SPDXID
	for _, path := range binaries {
		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return nil, err
		}
		var goos, goarch string
		var settings []string
		for _, s := range bi.Settings {
			switch s.Key {
			case "GOOS":
				goos = s.Value
			case "GOARCH":
				goarch = s.Value
			}
			settings = append(settings, s.Key+"="+s.Value)
		}
		name := filepath.Base(path)
		binID := spdxID("File-" + name)
		doc.Packages = append(doc.Packages, Package{
			SPDXID:           binID,
			Name:             name,
			VersionInfo:      version,
			PackageFileName:  name,
			DownloadLocation: "NOASSERTION",
			Checksums:        []Checksum{{Algorithm: "SHA256", Value: sum}},
			LicenseConcluded: "Apache-2.0",
			LicenseDeclared:  "Apache-2.0",
			CopyrightText:    "NOASSERTION",
			PrimaryPurpose:   "APPLICATION",
			ExternalRefs:     []ExternalRef{purl(mainModule, version)},
			Comment:          fmt.Sprintf("%s built for %s/%s with %s (%s)", bi.Path, goos, goarch, bi.GoVersion, strings.Join(settings, " ")),
		})
		doc.DocumentDescribes = append(doc.DocumentDescribes, binID)
		goID := spdxID("Go-" + bi.GoVersion)
		modules[goID] = Package{
			SPDXID: goID, Name: "go", VersionInfo: strings.TrimPrefix(bi.GoVersion, "go"),
			DownloadLocation: "https://go.dev/dl/", LicenseConcluded: "NOASSERTION", LicenseDeclared: "BSD-3-Clause",
			CopyrightText: "NOASSERTION", PrimaryPurpose: "LIBRARY", Comment: "the Go toolchain and standard library",
			ExternalRefs: []ExternalRef{purl("stdlib", bi.GoVersion)},
		}
		doc.Relationships = append(doc.Relationships, Relationship{binID, "CONTAINS", goID})
		for _, m := range bi.Deps {
			if m.Replace != nil {
				m = m.Replace
			}
			id := spdxID("Module-" + m.Path + "-" + m.Version)
			p := Package{
				SPDXID: id, Name: m.Path, VersionInfo: m.Version,
				DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
				LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
				PrimaryPurpose: "LIBRARY", ExternalRefs: []ExternalRef{purl(m.Path, m.Version)},
			}
			if m.Sum != "" {
				p.Comment = "go.sum " + m.Sum
			}
			modules[id] = p
			doc.Relationships = append(doc.Relationships, Relationship{binID, "CONTAINS", id})
		}
	}
	for _, id := range doc.DocumentDescribes {
		doc.Relationships = append(doc.Relationships, Relationship{"SPDXRef-DOCUMENT", "DESCRIBES", id})
	}
	ids := make([]string, 0, len(modules))
	for id := range modules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		doc.Packages = append(doc.Packages, modules[id])
	}
	return doc, nil
}

// purl is a package URL (https://github.com/package-url/purl-spec), the identifier scanners match.
func purl(path, version string) ExternalRef {
	return ExternalRef{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/" + path + "@" + version}
}

// spdxID makes an SPDX identifier: letters, digits, '.' and '-' only.
func spdxID(s string) string {
	return "SPDXRef-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
