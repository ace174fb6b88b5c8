package spec

import (
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "12h": 12 * time.Hour, "30m": 30 * time.Minute, "2w": 14 * 24 * time.Hour, "90s": 90 * time.Second, "1 d": 24 * time.Hour} {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "7", "d", "-1d", "1.5d", "7 days", "99999999999999999999d"} {
		if _, err := ParseAge(bad); err == nil {
			t.Errorf("ParseAge(%q) accepted", bad)
		}
	}
}

func TestCacheMaxAge(t *testing.T) {
	f, ds := Load("Dibfile", []byte("name: x\ndistro: debian-minimal\nelements: [vm]\ncache:\n  max-age: 3d\n"), func(string) (string, bool) { return "", false })
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	if got := f.Images[0].CacheMaxAge; got != 72*time.Hour {
		t.Errorf("cache.max-age = %v", got)
	}
}

func TestCacheRegistry(t *testing.T) {
	f, ds := Load("Dibfile", []byte("name: x\ndistro: debian-minimal\nelements: [vm]\ncache:\n  registry: http://127.0.0.1:5000/dib/cache\n"), func(string) (string, bool) { return "", false })
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	if got := f.Images[0].CacheRegistry; got != "http://127.0.0.1:5000/dib/cache" {
		t.Errorf("cache.registry = %q", got)
	}
	_, ds = Load("Dibfile", []byte("name: x\ndistro: debian-minimal\nelements: [vm]\ncache:\n  registry: just-a-host\n"), func(string) (string, bool) { return "", false })
	if !ds.HasErrors() {
		t.Error("cache.registry without a repository accepted")
	}
}
