package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/cache/remote"
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
	// Registry is the registry the report asked for the entries the
	// local cache lacks (Options.CacheFrom, else the plan's
	// cache.registry), nil when none; RegistryErrors say why it, or an
	// entry of it, was not used (the steps then show as they would
	// without it).
	Registry       *remote.Remote
	RegistryErrors []string
}

// PlanCache reports, without locking or writing anything, which steps of
// p the cache at o.CacheDir holds and, with a registry (Options.CacheFrom,
// else the plan's cache.registry), which of the others an apply would pull
// from it: it reads the registry's records, never the snapshots. It
// returns nil when there is no cache directory (--cache-dir off).
func PlanCache(ctx context.Context, p *plan.Plan, o Options) (*CacheReport, error) {
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
	from, err := pullRegistry(p, o)
	if err != nil {
		return nil, err
	}
	r := &CacheReport{Status: map[string]string{}, Inputs: map[string][]string{}, Changes: map[string][]string{},
		Packages: map[string][]string{}, MirrorTime: map[string]time.Time{}, Registry: from}
	if c == nil && from == nil {
		for _, s := range p.Steps {
			r.Status[s.ID] = "will run: the build cache is empty"
		}
		return r, nil
	}
	if c == nil {
		c = cache.Empty(o.CacheDir)
	}
	if len(o.CacheSecretKey) > 0 {
		if err := c.ShareSecretKey(o.CacheSecretKey); err != nil {
			return nil, err
		}
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
	opts := cache.DecideOptions{MaxAge: maxAge, Refresh: o.Refresh, NoCache: o.NoCache}
	if from != nil {
		opts.Lookup = lookupRemote(ctx, from, func(_, msg string) { r.RegistryErrors = append(r.RegistryErrors, msg) })
	}
	d := c.Decide(p, keys, opts)
	pulls := pulledSteps(&stepCache{p: p, c: c, keys: keys, opts: opts, dec: d})
	for i, s := range p.Steps {
		sd := d.Steps[i]
		r.Inputs[s.ID] = sd.Key.Inputs
		m, _ := c.Get(sd.Key.Key)
		if m == nil && s.Mirror && opts.Lookup != nil {
			m = opts.Lookup(sd.Key.Key) // the registry's record
		}
		if s.Mirror && m != nil && m.Packages != nil {
			r.Packages[s.ID], r.MirrorTime[s.ID] = m.Packages, m.MirrorTime
		}
		st := sd.Reason
		if sd.Action == cache.Run {
			st = "will run: " + sd.Reason
		}
		if sd.Action == cache.Run && sd.Reason == "not in the cache" {
			if from != nil {
				st += " nor in the registry " + from.Ref
			}
			own, _ := p.Explain(s.ID)
			ch := c.Explain(p, i, sd.Key, own)
			r.Changes[s.ID] = ch
			if len(ch) > 0 {
				st = "will run: " + strings.Join(ch, "; ")
			}
		}
		switch {
		case pulls[i]:
			st += " (pulled from the registry " + from.Ref + ")"
		case sd.Action == cache.Reuse && sd.Entry != nil && from != nil:
			if local, _ := c.Get(sd.Entry.Key); local == nil {
				st += " (in the registry " + from.Ref + ")"
			}
		}
		r.Status[s.ID] = st
	}
	return r, nil
}

// pulledSteps says, by step index, which steps' cached results an apply
// would pull from the registry: the local cache lacks the entry it needs
// (stepCache.needed) or, for the steps whose state is restored, the
// snapshot or one of the snapshots it is a layer on.
func pulledSteps(sc *stepCache) map[int]bool {
	out := map[int]bool{}
	if sc.opts.Lookup == nil {
		return out
	}
	missing := map[string]bool{}
	for _, m := range sc.needed() {
		if local, _ := sc.c.Get(m.Key); local == nil {
			missing[m.Key] = true
		}
	}
	d := sc.dec
	restore := false
	if d.Restore >= 0 && !d.NoState && d.RestoreEntry != nil {
		for _, m := range sc.chain(d.RestoreEntry) {
			restore = restore || missing[m.Key]
		}
	}
	for i, sd := range d.Steps {
		switch {
		case sd.Action == cache.Reuse && sd.Entry != nil:
			out[i] = missing[sd.Entry.Key]
		case i <= d.Restore:
			out[i] = restore // restored, or run from a point inside it
		}
	}
	return out
}
