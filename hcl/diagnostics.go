package hcl

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/sluice-gateway/sluice/engine/secret"
)

// WriteDiagnostics prints, with secrets hidden (engine/secret: the values of secret-named
// attributes and keys in snippets, URL credentials and bearer tokens everywhere), each diagnostic as "file:line:column: error: summary", its detail, and
// the source line with the offending range underlined:
//
//	gateway.hcl:2:18: error: Invalid value
//	  read_timeout: "soon" is not a duration; write one such as "250ms", "30s" or "10m".
//	    2 |   read_timeout = "soon"
//	      |                  ^^^^^^
func (c *Config) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics) error {
	bw := bufio.NewWriter(w)
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject == nil {
			fmt.Fprintf(bw, "%s: %s\n", sev, secret.Text(d.Summary))
		} else {
			r := d.Subject
			fmt.Fprintf(bw, "%s:%d:%d: %s: %s\n", r.Filename, r.Start.Line, r.Start.Column, sev, secret.Text(d.Summary))
		}
		if d.Detail != "" {
			fmt.Fprintf(bw, "  %s\n", secret.Text(d.Detail))
		}
		if d.Subject != nil && c != nil {
			c.writeSnippet(bw, d.Subject)
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// writeSnippet prints the first source line of r with r underlined.
func (c *Config) writeSnippet(w io.Writer, r *hcl.Range) {
	f, ok := c.Files[r.Filename]
	if !ok || f == nil {
		return
	}
	lines := bytes.Split(f.Bytes, []byte("\n"))
	if r.Start.Line < 1 || r.Start.Line > len(lines) {
		return
	}
	line := strings.TrimRight(string(lines[r.Start.Line-1]), "\r")
	line = strings.ReplaceAll(line, "\t", " ")
	start := r.Start.Column - 1
	end := r.End.Column - 1
	if r.End.Line != r.Start.Line || end > len(line) {
		end = len(line)
	}
	if start > len(line) {
		start = len(line)
	}
	line, col := secret.HCLLine(line)
	start, end = col(start), col(end)
	if end <= start {
		end = start + 1
	}
	num := fmt.Sprintf("%d", r.Start.Line)
	fmt.Fprintf(w, "  %s | %s\n", num, line)
	fmt.Fprintf(w, "  %s | %s%s\n", strings.Repeat(" ", len(num)), strings.Repeat(" ", start), strings.Repeat("^", end-start))
}
