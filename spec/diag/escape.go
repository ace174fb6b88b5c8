package diag

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// IsControl reports whether a terminal would act on r instead of showing
// it: C0 and C1 control characters, DEL, and the Unicode bidirectional
// formatting characters that reorder what a reader sees. An invalid UTF-8
// byte (utf8.RuneError) counts too.
func IsControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == utf8.RuneError:
		return true
	}
	return false
}

// Escape returns s with every control character (IsControl) but newline
// and tab written as \xNN or \uNNNN, so that text from a Dibfile, an
// element or a build cannot move the cursor, clear the screen or hide
// lines from the person reading a rendering.
func Escape(s string) string {
	clean := true
	for _, r := range s {
		if r != '\n' && r != '\t' && IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n' || r == '\t' || !IsControl(r):
			b.WriteString(s[i : i+n])
		case (r == utf8.RuneError && n == 1) || r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
		i += n
	}
	return b.String()
}

// Clip limits what a diagnostic echoes of a value: a word (a run without
// spaces) longer than MaxWord bytes keeps its first MaxWord bytes and says
// how long it was, and so does a line longer than MaxLine. An input may
// hold a 100,000-digit number or a 256 KiB string; the message about it
// need not.
func Clip(s string) string {
	if len(s) <= MaxWord {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		words := strings.SplitAfter(l, " ")
		for j, w := range words {
			words[j] = clip(w, MaxWord)
		}
		lines[i] = clip(strings.Join(words, ""), MaxLine)
	}
	return strings.Join(lines, "")
}

// The bounds of Clip.
const (
	MaxWord = 512
	MaxLine = 4096
)

// clip cuts s to at most max bytes, saying "… (N bytes)" (at a character
// boundary, a trailing space or newline kept): clipping again changes
// nothing.
func clip(s string, max int) string {
	body := strings.TrimRight(s, " \n")
	if len(body) <= max {
		return s
	}
	suffix := fmt.Sprintf("… (%d bytes)", len(body))
	cut := max - len(suffix)
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return body[:cut] + suffix + s[len(body):]
}
