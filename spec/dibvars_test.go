package spec

import (
	"slices"
	"testing"

	"github.com/dibuild/dib/internal/fixture"
)

// TestDibVarsMatchSchema: the values the variables accept are the ones the
// typed keys accept (the schema is the source of truth of the format).
func TestDibVarsMatchSchema(t *testing.T) {
	props := fixture.SchemaImageKeys(t)
	if got := props["fs-type"]; !slices.Equal(got, fsTypes) {
		t.Errorf("schema fs-type enum %v, spec %v", got, fsTypes)
	}
	for _, dv := range dibVars {
		if _, ok := props[dv.Key]; !ok && dv.Key != "release" && dv.Key != "mirror" {
			t.Errorf("%s's key %q is not a Dibfile key", dv.Var, dv.Key)
		}
	}
}

func TestParseDibChecksumAndSize(t *testing.T) {
	for v, want := range map[string][]string{"": nil, "0": nil, "1": {"md5", "sha256"}, "sha256": {"sha256"}, "md5,sha256": {"md5", "sha256"}, "yes": nil} {
		if got := ParseDibChecksum(v); !slices.Equal(got, want) {
			t.Errorf("DIB_CHECKSUM=%q: %v, want %v", v, got, want)
		}
	}
	for v, want := range map[string]int64{"4": 4 << 30, "2.5": 5 << 29, "0.001": 1048 * 1024} {
		if got, err := ParseDibImageSize(v); err != nil || got != want {
			t.Errorf("DIB_IMAGE_SIZE=%q: %d %v, want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"x", "-1", "0", "NaN", "Inf"} {
		if _, err := ParseDibImageSize(v); err == nil {
			t.Errorf("DIB_IMAGE_SIZE=%q accepted", v)
		}
	}
}
