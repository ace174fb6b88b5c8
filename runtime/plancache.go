package runtime

import (
	"fmt"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/cache"
)

// CacheReport is what the build cache would do with each step of a plan,
// for `dib plan`.
type CacheReport struct {
	// Status maps a step ID to "cached: …" or "will run: …".
	Status map[string]string
	// Keys and Changes by step ID: the cache key's labelled inputs, and,
	// for steps that run because they are not cached, what changed since
	// the cache last saw the step.
	Inputs  map[string][]string
	Changes map[string][]string
	// Packages by step ID: for a step that talks to a package mirror and
	// whose result is cached, what it installed (name=version) and when.
	Packages   map[string][]string
	MirrorTime map[string]time.Time
}

// PlanCache reports, without locking or writing anything, which steps of
// p the cache at o.CacheDir holds. It returns nil when there is no cache
// yet.
func PlanCache(p *plan.Plan, o Options) (*CacheReport, error) {
	if o.CacheDir == "" {
		return nil, nil
	}
	if o.HostDpkgStatus == "" {
		o.HostDpkgStatus = "/var/lib/dpkg/status"
	}
	c, err := cache.OpenExisting(o.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("build cache %s: %w", o.CacheDir, err)
	}
	r := &CacheReport{Status: map[string]string{}, Inputs: map[string][]string{}, Changes: map[string][]string{},
		Packages: map[string][]string{}, MirrorTime: map[string]time.Time{}}
	if c == nil {
		for _, s := range p.Steps {
			r.Status[s.ID] = "will run: the build cache is empty"
		}
		return r, nil
	}
	hostPkgs, err := cache.HostPackages(o.HostDpkgStatus)
	if err != nil {
		return nil, err
	}
	dibID := o.DibID
	if dibID == "" {
		if dibID, err = cache.SelfID(); err != nil {
			return nil, err
		}
	}
	secrets := map[string]string{}
	for k, v := range p.Secrets {
		secrets[k] = v
	}
	for k, v := range o.Secrets {
		secrets[k] = v
	}
	keys := c.Keys(p, dibID, hostPkgs, secrets)
	maxAge := o.CacheMaxAge
	if maxAge == 0 && p.Cache != nil {
		maxAge = time.Duration(p.Cache.MaxAgeSeconds) * time.Second
	}
	d := c.Decide(p, keys, cache.DecideOptions{MaxAge: maxAge, Refresh: o.Refresh, NoCache: o.NoCache})
	for i, s := range p.Steps {
		sd := d.Steps[i]
		r.Inputs[s.ID] = sd.Key.Inputs
		if m, _ := c.Get(sd.Key.Key); s.Mirror && m != nil && m.Packages != nil {
			r.Packages[s.ID], r.MirrorTime[s.ID] = m.Packages, m.MirrorTime
		}
		if sd.Action != cache.Run {
			r.Status[s.ID] = sd.Reason
			continue
		}
		st := "will run: " + sd.Reason
		if sd.Reason == "not in the cache" {
			own, _ := p.Explain(s.ID)
			ch := c.Explain(p, i, sd.Key, own)
			r.Changes[s.ID] = ch
			if len(ch) > 0 {
				st = "will run: " + strings.Join(ch, "; ")
			}
		}
		r.Status[s.ID] = st
	}
	return r, nil
}
