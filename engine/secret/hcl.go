package secret

import "strings"

// HCLLine hides the secrets on one line of HCL source, as a diagnostic's snippet shows it: every
// string literal in the value of an attribute or object key named like a secret
// (`token = "…"`, `"Authorization" = "…"`, `hmac_secret = env("S", "…")`), and the credentials
// of URLs and Bearer/Basic tokens in any literal. Col maps a byte offset of line to the
// corresponding offset of the result, for underlining.
func HCLLine(line string) (out string, col func(int) int) {
	type edit struct{ start, end, newLen int }
	var edits []edit
	var b strings.Builder
	key := ""          // the last name or literal seen: the key of a following "=" or ":"
	secretVal := false // inside the value of a secret-named key
	depth := 0         // parentheses and brackets inside that value
	last := 0
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			end := min(j, len(line)) // the content is line[i+1:end]
			content := line[i+1 : end]
			repl := content
			if secretVal {
				repl = Marker
			} else {
				key = content
				repl = Text(content)
			}
			if repl != content {
				b.WriteString(line[last : i+1])
				b.WriteString(repl)
				edits = append(edits, edit{i + 1, end, len(repl)})
				last = end
			}
			i = min(j+1, len(line))
			continue
		case c == '#' || c == '/' && i+1 < len(line) && line[i+1] == '/':
			i = len(line) // a comment
			continue
		case c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			j := i
			for j < len(line) && (line[j] == '_' || line[j] == '-' || line[j] >= 'a' && line[j] <= 'z' || line[j] >= 'A' && line[j] <= 'Z' || line[j] >= '0' && line[j] <= '9' || line[j] == '.') {
				j++
			}
			if !secretVal {
				key = line[i:j]
			}
			i = j
			continue
		case c == '=' || c == ':':
			if i+1 < len(line) && line[i+1] == '=' {
				i += 2 // a comparison
				continue
			}
			if !secretVal && Name(key) {
				secretVal, depth = true, 0
			}
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == ',' || c == '}':
			if depth <= 0 {
				secretVal = false
			}
		}
		i++
	}
	if len(edits) == 0 {
		return line, func(c int) int { return c }
	}
	b.WriteString(line[last:])
	return b.String(), func(c int) int {
		shift := 0
		for _, e := range edits {
			switch {
			case c >= e.end:
				shift += e.newLen - (e.end - e.start)
			case c > e.start:
				return e.start + shift + min(c-e.start, e.newLen)
			}
		}
		return c + shift
	}
}
