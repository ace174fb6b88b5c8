// Package pyrepr renders strings the way Python's repr() does. DIB's error
// messages embed repr()'d values (element lists, config keys), and dib's
// messages must match them byte for byte.
package pyrepr

import (
	"fmt"
	"strings"
)

// String is repr(s) for a Python str: single quotes unless s holds a single
// quote and no double quote, backslash escapes for the quote, backslash,
// \n \r \t and other control characters.
func String(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
