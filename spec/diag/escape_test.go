package diag

import (
	"bytes"
	"strings"
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

// TestClip: a diagnostic echoes at most MaxWord bytes of one word and
// MaxLine of one line, and says how long the value was; short text and
// character boundaries are kept.
func TestClip(t *testing.T) {
	long := strings.Repeat("7", 100000)
	for in, want := range map[string]string{
		"short words stay":           "short words stay",
		"number " + long + " is bad": "number " + long[:MaxWord-18] + "… (100000 bytes) is bad",
		"a\n" + long + "\nb":         "a\n" + long[:MaxWord-18] + "… (100000 bytes)\nb",
		strings.Repeat("é", MaxWord): strings.Repeat("é", (MaxWord-16)/2) + "… (1024 bytes)",
		strings.Repeat("ab ", 2000):  strings.Repeat("ab ", (MaxLine-16)/3) + "… (5999 bytes) ",
	} {
		got := Clip(in)
		if got != want {
			t.Errorf("Clip(%.40q…) = …%q, want …%q", in, got[max(0, len(got)-60):], want[max(0, len(want)-60):])
		}
		if again := Clip(got); again != got {
			t.Errorf("Clip is not idempotent: …%q → …%q", got[max(0, len(got)-60):], again[max(0, len(again)-60):])
		}
	}
	var b bytes.Buffer
	if err := (Diagnostics{Errorf("format_version %s is bad", long).WithHint("%s", long)}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 2*MaxWord+200 {
		t.Errorf("WriteText wrote %d bytes for a clipped value", b.Len())
	}
}
