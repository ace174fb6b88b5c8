package pyrepr

import "testing"

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"abc":       `'abc'`,
		"it's":      `"it's"`,
		`say "x"`:   `'say "x"'`,
		`both '"`:   `'both \'"'`,
		"a\\b":      `'a\\b'`,
		"tab\tnl\n": `'tab\tnl\n'`,
		"\x01":      `'\x01'`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %s, want %s", in, got, want)
		}
	}
}
