package element

import (
	"math/rand"
	"slices"
	"sort"
	"testing"
)

// TestLessRunParts checks the order of LC_ALL=C sort -n, including the
// fixture-sort-demo order recorded by the oracle and GNU sort's handling of
// signs, fractions, leading blanks and zeros.
func TestLessRunParts(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"oracle fixture-sort-demo", []string{"A-upper", "a-lower", "noprefix", "01-package-installs", "1e3-sci",
			"05-zero-five", "5-five", "07-from-second", "9-nine", "010-ten-padded", "10-Ten-upper",
			"10-debian-networking", "10-ten", "10-ten-second", "10_underscore", "12-x", "100-hundred"}},
		{"negative numbers first", []string{"-10-a", "-9-b", "-1", "-", "-0", "-x", "0", "00", "A", "a", "1"}},
		{"fractions", []string{"1", "1.0", "1.05", "1.5", "1.50", "2"}},
		{"leading blanks are skipped", []string{"\t5", "  5", "5", " 6"}},
		{"long numbers", []string{"99999999999999999998", "99999999999999999999", "100000000000000000000"}},
		{"env paths sort bytewise", []string{"/e/05-d.sh", "/e/10-A.bash", "/e/10-a.bash", "/e/100-c", "/e/11-x", "/e/9-b", "/e/z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			for range 20 {
				got := slices.Clone(tt.want)
				r.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
				sort.SliceStable(got, func(i, j int) bool { return lessRunParts(got[i], got[j]) })
				if !slices.Equal(got, tt.want) {
					t.Fatalf("got  %q\nwant %q", got, tt.want)
				}
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name     string
		run, env bool
	}{
		{"10-foo", true, true},
		{"10_foo", true, true},
		{"10-foo.bash", false, true},
		{"bad~name", false, false},
		{"back\\slash", false, true}, // grep -E bracket: backslash is literal
		{"", false, false},
		{"a b", false, false},
	}
	for _, tt := range tests {
		if got := runPartsName(tt.name); got != tt.run {
			t.Errorf("runPartsName(%q) = %v", tt.name, got)
		}
		if got := envName(tt.name); got != tt.env {
			t.Errorf("envName(%q) = %v", tt.name, got)
		}
	}
}
