package diag

import (
	"bytes"
	"testing"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"a\nb\tc":          "a\nb\tc",
		"\x1b[2Jclear\x07": `\x1b[2Jclear\x07`,
		"rtl\u202eevil":    `rtl\u202eevil`,
		"c1\u0085x":        `c1\u0085x`,
		"bad\xffutf8":      `bad\xffutf8`,
		"del\x7f":          `del\x7f`,
		"ünïcödé stays":    "ünïcödé stays",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteTextEscapes: a diagnostic quoting hostile input stays one
// line and sends no control character to the terminal.
func TestWriteTextEscapes(t *testing.T) {
	var b bytes.Buffer
	d := Errorf("bad value \x1b[8mhidden\nsecond line").At("f\x07", 1, 2).WithHint("x\ty")
	if err := (Diagnostics{d}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "f\\x07:1:2: error: bad value \\x1b[8mhidden\\nsecond line\n  hint: x\\ty\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}
