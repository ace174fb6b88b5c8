package runtime

import (
	"strings"
	"testing"
)

func TestPlanCacheStatus(t *testing.T) {
	requireGNUTar(t)
	cacheDir := t.TempDir()
	p := cachePlan(t, nil)
	o := Options{CacheDir: cacheDir, Secrets: map[string]string{"DIB_PASSWORD": "hunter2"}}
	r, err := PlanCache(p, o)
	if err != nil || r.Status[p.Steps[0].ID] != "will run: the build cache is empty" {
		t.Fatalf("empty cache: %v %v", err, r)
	}
	if res := applyCached(t, p, cacheDir, t.TempDir(), nil); res.err != nil {
		t.Fatal(res.err)
	}
	r, err = PlanCache(p, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if !strings.HasPrefix(r.Status[s.ID], "cached") {
			t.Errorf("%s: %q after a build", s.Title, r.Status[s.ID])
		}
	}
	edited := cachePlan(t, map[string]string{"post-root.d/10-post": "#!/bin/sh\necho edited\n"})
	r, err = PlanCache(edited, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"phase root.d":      "cached: state restored from the snapshot after step 3",
		"phase post-root.d": "will run: changed: scripts[0].sha256 (post-root.d/10-post)",
		"phase finalise.d":  "will run: an earlier step runs (step 4)",
	}
	for _, s := range edited.Steps {
		if w, ok := want[s.Title]; ok && r.Status[s.ID] != w {
			t.Errorf("%s: %q, want %q", s.Title, r.Status[s.ID], w)
		}
	}
	// A changed secret is named, never shown.
	o.Secrets = map[string]string{"DIB_PASSWORD": "changed"}
	r, _ = PlanCache(p, o)
	for _, s := range p.Steps {
		if s.Title == "phase finalise.d" && r.Status[s.ID] != "will run: changed: secret DIB_PASSWORD" {
			t.Errorf("finalise.d with a new secret: %q", r.Status[s.ID])
		}
	}
}
