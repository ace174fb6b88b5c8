package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/cache/remote"
	"github.com/dibuild/dib/runtime/ledger"
	"golang.org/x/sys/unix"
)

// stepCache is one apply's use of the build cache (runtime/cache).
type stepCache struct {
	p       *plan.Plan
	c       *cache.Cache
	keys    []cache.Key
	dec     *cache.Decision
	opts    cache.DecideOptions
	exclude map[string]bool
	// mirrorTime is the oldest time a step of the current state's history
	// used a package mirror (zero: none).
	mirrorTime time.Time
	// base is what the last snapshot this build wrote or restored saw of
	// the tree, and baseKey its entry: the next snapshot is a layer on it
	// (cache.WriteLayer). Nil: the next snapshot is the whole tree.
	base    *cache.Manifest
	baseKey string
	// disk is the disk snapshot this build wrote or restored (nil: none):
	// the raw output's entry links its payload (Writer.Link).
	disk *cache.Meta
	// from and to are the registries pulled from and pushed to (nil:
	// none); fetch pulls the entries a new decision uses (registry.go).
	from, to *remote.Remote
	fetch    func()
	// pkgsBefore are the tree's packages (dpkg) when the current step
	// that talks to a mirror started.
	pkgsBefore map[string]string
}

// treePackages reads the packages installed in the tree (its dpkg status;
// none when it has none).
func (b *Build) treePackages() map[string]string {
	pk, err := cache.HostPackages(filepath.Join(b.Tree(), "var/lib/dpkg/status"))
	if err != nil {
		return map[string]string{}
	}
	return pk
}

// installed is what the running mirror step installed so far.
func (b *Build) installed(sc *stepCache) []string {
	if sc.pkgsBefore == nil {
		return nil
	}
	return cache.Installed(sc.pkgsBefore, b.treePackages())
}

// CacheWait is the event sent when another command holds the cache's lock
// exclusively (dib cache prune, verify).
const CacheWait = "cache-wait"

// StepCached is the event of a step not run because the cache holds its
// result (Error is empty; Title says which).
const StepCached = "step-cached"

// openCache opens and locks the cache and decides what runs.
func (b *Build) openCache(ctx context.Context) (*stepCache, error) {
	o := b.Options
	// What this build writes into the cache is in its ledger, recorded
	// before the cache is opened (which may write its key): a killed
	// build's half-written entry is reclaimed with the rest.
	owner := "dib-" + b.id
	if err := b.ledger.Record(ledger.Entry{Kind: ledger.Glob, Path: filepath.Join(o.CacheDir, "tmp"), Pattern: cache.TmpPattern(owner)}); err != nil {
		return nil, err
	}
	c, err := cache.OpenOwned(o.CacheDir, owner)
	if err != nil {
		return nil, fmt.Errorf("build cache %s: %w", o.CacheDir, err)
	}
	c.Record = func(path string) error { return b.ledger.Record(ledger.Entry{Kind: ledger.File, Path: path}) }
	err = c.LockShared(ctx, func(holder string) {
		msg := fmt.Sprintf("waiting for the build cache %s: another dib command holds it exclusively (%s)", o.CacheDir, holder)
		fmt.Fprintf(b.Log, "dib: %s\n", msg)
		b.observer.Event(Event{Type: CacheWait, Time: time.Now(), Plan: b.Plan.ID, Title: msg})
	})
	if err != nil {
		return nil, err
	}
	b.Stack.Push("unlock the build cache", func(context.Context) error { return c.Unlock() })
	if len(o.CacheSecretKey) > 0 {
		if err := c.ShareSecretKey(o.CacheSecretKey); err != nil {
			return nil, err
		}
	}
	hostPkgs, err := cache.HostPackages(o.HostDpkgStatus)
	if err != nil {
		return nil, err
	}
	sc := &stepCache{p: b.Plan, c: c, exclude: map[string]bool{}}
	dibID := o.DibID
	if dibID == "" {
		if dibID, err = cache.SelfID(); err != nil {
			return nil, fmt.Errorf("build cache: identifying dib: %w", err)
		}
	}
	sc.keys = c.Keys(b.Plan, dibID, hostPkgs, o.Secrets)
	maxAge := o.CacheMaxAge
	if maxAge == 0 && b.Plan.Cache != nil {
		maxAge = time.Duration(b.Plan.Cache.MaxAgeSeconds) * time.Second
	}
	sc.opts = cache.DecideOptions{MaxAge: maxAge, Refresh: o.Refresh, NoCache: o.NoCache, Exclude: sc.exclude}
	if err := sc.openRemotes(o); err != nil {
		return nil, err
	}
	if sc.from != nil {
		sc.opts.Lookup = b.remoteLookup(ctx, sc)
		sc.fetch = func() { b.pullDecided(ctx, sc) }
	}
	sc.decide()
	b.expected = expectedDurations(c, b.Plan)
	return sc, nil
}

// decide decides what runs; with a registry (Options.CacheFrom), the
// entries the decision uses are pulled into the local cache first.
func (sc *stepCache) decide() {
	sc.dec = sc.c.Decide(sc.p, sc.keys, sc.opts)
	if sc.fetch != nil {
		sc.fetch()
	}
}

// expectedDurations returns how long each step of p took when it was last
// built, from the cache's records (0: never): the entry of the same step
// ID, else the last of the same image, kind and title (the step changed,
// e.g. an edited script).
func expectedDurations(c *cache.Cache, p *plan.Plan) []time.Duration {
	metas, err := c.List() // oldest first: the last one found wins
	if err != nil {
		return nil
	}
	type same struct{ kind, title string }
	byID, byTitle := map[string]float64{}, map[same]float64{}
	for _, m := range metas {
		if m.Seconds <= 0 {
			continue
		}
		byID[m.Step] = m.Seconds
		if m.Image == p.Image.Name {
			byTitle[same{m.Kind, m.Title}] = m.Seconds
		}
	}
	out := make([]time.Duration, len(p.Steps))
	for i, s := range p.Steps {
		sec, ok := byID[s.ID]
		if !ok {
			sec = byTitle[same{s.Kind, s.Title}]
		}
		out[i] = time.Duration(sec * float64(time.Second))
	}
	return out
}

// corrupt reports and drops a corrupt entry; the caller decides again.
func (b *Build) corrupt(sc *stepCache, m *cache.Meta, err error) {
	msg := fmt.Sprintf("cache entry %s (step %q) is corrupt, dropped; it is rebuilt: %v", plan.ShortID(m.Key), m.Title, err)
	fmt.Fprintf(b.Log, "dib: %s\n", msg)
	b.observer.Event(Event{Type: CacheCorrupt, Time: time.Now(), Plan: b.Plan.ID, Step: m.Step, Title: m.Title, Error: msg})
	sc.exclude[m.Key] = true
	_ = sc.c.Drop(m.Key)
}

// CacheCorrupt is the event of a corrupt cache entry found and dropped.
const CacheCorrupt = "cache-corrupt"

func (b *Build) cachedEvent(i int, reason string) {
	s := &b.Plan.Steps[i]
	fmt.Fprintf(b.Log, "dib: ==> [%d/%d] %s (%s): %s\n", i+1, len(b.Plan.Steps), s.Title, plan.ShortID(s.ID), reason)
	b.observer.Event(Event{Type: StepCached, Time: time.Now(), Step: s.ID, Kind: s.Kind, Title: s.Title, Index: i + 1, Total: len(b.Plan.Steps), LogPath: b.LogPath, Reason: reason})
}

// restoreOutputs puts the outputs of a cached step into the output
// directory: files already there and unchanged since dib placed them are
// kept; the others are extracted beside their destination and renamed.
func (b *Build) restoreOutputs(sc *stepCache, m *cache.Meta) error {
	outDir := absPath(b.Options.OutputDir)
	sc.c.Used(m.Key)
	if sc.c.InPlace(m, outDir) {
		for _, o := range m.Outputs {
			b.AddOutput(filepath.Join(outDir, o))
		}
		return nil
	}
	// The staging directory of a restore killed half-way is reclaimed
	// through the build's ledger (outputTemps). Any other one here is in
	// use: the restore of another image of the same apply, which shares
	// the output directory and its lock.
	stage, err := os.MkdirTemp(outDir, ".dib-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if m.OutputsPayload() == cache.OutputPayload {
		// The output as it is.
		from, err := inside(stage, m.Outputs[0])
		if err != nil {
			return fmt.Errorf("%w: %v", cache.ErrCorrupt, err)
		}
		if err := os.MkdirAll(filepath.Dir(from), 0o755); err != nil {
			return err
		}
		if err := sc.c.CopyOut(m, cache.OutputPayload, from); err != nil {
			return err
		}
	} else if err := sc.c.Extract(m, m.Archive("outputs"), stage); err != nil {
		return err
	}
	for j, o := range m.Outputs {
		src := o
		if j < len(m.Stored) && m.Stored[j] != "" {
			src = m.Stored[j]
		}
		dst := filepath.Join(outDir, o)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		}
		if err := b.Creating(dst); err != nil {
			return err
		}
		from, err := inside(stage, src)
		if err != nil {
			return fmt.Errorf("%w: %v", cache.ErrCorrupt, err)
		}
		if err := os.Rename(from, dst); err != nil {
			return err
		}
		b.AddOutput(dst)
	}
	return sc.c.Place(m, outDir)
}

// restoreSnapshot recreates the state after step m in the workspace.
func (b *Build) restoreSnapshot(sc *stepCache, m *cache.Meta) error {
	ws := b.Workspace
	tree := b.Tree() // Snapshot.Tree says where it was; today always the same place
	for _, d := range []string{tree, ws.HooksPath} {
		if err := emptyDir(d); err != nil {
			return err
		}
	}
	if m.Snapshot.Disk != "" {
		return b.restoreDisk(sc, m)
	}
	if err := sc.c.RestoreTree(m, tree); err != nil {
		return err
	}
	if m.Snapshot.Hooks {
		if err := sc.c.Extract(m, m.Archive("hooks"), ws.HooksPath); err != nil {
			return err
		}
		if err := b.rewriteScripts(); err != nil {
			return err
		}
		b.hooksWritten = true
	}
	b.finalised = m.Snapshot.Finalised
	sc.mirrorTime = m.MirrorTime
	sc.c.Used(m.Key)
	base, err := cache.Scan(tree)
	if err != nil {
		return err
	}
	sc.base, sc.baseKey = base, m.Key
	where := "after step"
	if m.Snapshot.Scripts > 0 {
		where = fmt.Sprintf("after %d scripts of step", m.Snapshot.Scripts)
	}
	fmt.Fprintf(b.Log, "dib: restored the state %s %d (%s) from cache entry %s\n", where, m.Index, m.Title, plan.ShortID(m.Key))
	return nil
}

// restoreDisk restores a disk snapshot: the finished image, the build's
// disk for the outputs (useImage). The tree and the hook tree stay empty:
// no step that reads them comes after the final state.
func (b *Build) restoreDisk(sc *stepCache, m *cache.Meta) error {
	stage, err := os.MkdirTemp(b.Workspace.BuildDir, "cached-disk-")
	if err != nil {
		return err
	}
	img, err := inside(stage, m.Snapshot.Disk)
	if err != nil {
		return fmt.Errorf("%w: %v", cache.ErrCorrupt, err)
	}
	if err := sc.c.Extract(m, m.Archive("disk"), stage); err != nil {
		os.RemoveAll(stage)
		return err
	}
	if fi, err := os.Lstat(img); err != nil || !fi.Mode().IsRegular() {
		os.RemoveAll(stage)
		return fmt.Errorf("%w: %s holds no image %s", cache.ErrCorrupt, plan.ShortID(m.Key), m.Snapshot.Disk)
	}
	if err := b.useImage(img); err != nil {
		return err
	}
	b.finalised = m.Snapshot.Finalised
	b.hooksWritten = false
	sc.mirrorTime = m.MirrorTime
	sc.c.Used(m.Key)
	sc.base, sc.baseKey, sc.disk = nil, "", m
	fmt.Fprintf(b.Log, "dib: restored the disk image after step %d (%s) from cache entry %s\n", m.Index, m.Title, plan.ShortID(m.Key))
	return nil
}

// emptyDir removes what a directory holds (it must have no mounts).
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// record writes step i's entry after it succeeded: its record, and the
// snapshot (at snapshot points) or its outputs. A failure to write is
// logged, not fatal: the build's result does not depend on the cache.
func (b *Build) record(ctx context.Context, sc *stepCache, i int, started time.Time, ran time.Duration, outputsBefore int) {
	defer func() {
		b.clusterIndex = nil
		if b.staged != nil {
			b.staged.staged.Discard()
			b.staged = nil
		}
	}()
	s := &b.Plan.Steps[i]
	k := sc.keys[i]
	if s.Mirror && (sc.mirrorTime.IsZero() || started.Before(sc.mirrorTime)) {
		sc.mirrorTime = started.UTC()
	}
	stepInputs, _ := b.Plan.Explain(s.ID)
	m := cache.Meta{
		Key: k.Key, Step: s.ID, Kind: s.Kind, Title: s.Title, Image: b.Plan.Image.Name, Index: i + 1,
		MirrorTime: sc.mirrorTime, Inputs: k.Inputs, StepInputs: stepInputs,
		Seconds: ran.Seconds(),
	}
	if old, _ := sc.c.Get(k.Key); old != nil && !sc.exclude[k.Key] && (!s.Snapshot || old.Snapshot != nil) && len(b.outputs) == outputsBefore {
		return // already there (a rebuild of cached steps)
	}
	writeStart := time.Now()
	defer func() {
		fmt.Fprintf(b.Log, "dib: cache entry of step %d written in %s\n", i+1, time.Since(writeStart).Round(time.Millisecond))
	}()
	err := func() error {
		w, err := sc.c.Begin(m)
		if err != nil {
			return err
		}
		defer w.Abort()
		var next *cache.Manifest
		disk := false
		if s.Snapshot && k.State {
			if disk, err = b.snapshotDisk(ctx, w); err != nil {
				return err
			}
			if !disk {
				if next, err = b.snapshot(ctx, sc, w, 0); err != nil {
					return err
				}
			}
		}
		if outs := b.outputs[outputsBefore:]; len(outs) == 1 && b.imageOutputs[outs[0]] && sc.disk != nil {
			// The raw output is the disk snapshot's image: its payload is
			// the snapshot's, linked, not written again.
			rel, err := filepath.Rel(absPath(b.Options.OutputDir), absPath(outs[0]))
			if err != nil || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("image output %s is not in the output directory", outs[0])
			}
			disk := sc.disk.Archive("disk")
			if err := w.Link("outputs"+strings.TrimPrefix(disk, "disk"), sc.disk, disk); err != nil {
				return err
			}
			w.SetOutputs([]string{filepath.ToSlash(rel)})
			w.SetStored([]string{sc.disk.Snapshot.Disk})
		} else if len(outs) > 0 {
			outDir := absPath(b.Options.OutputDir)
			var rels []string
			for _, o := range outs {
				rel, err := filepath.Rel(outDir, absPath(o))
				if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
					w.SetIncomplete()
					rels = nil
					break
				}
				rels = append(rels, filepath.ToSlash(rel))
			}
			if st := b.staged; len(rels) == 1 && st != nil && st.matches(outs[0]) {
				// Copied as the step wrote it (cache.Stage).
				if err := w.Adopt(cache.OutputPayload, st.staged, 0o644); err != nil {
					return err
				}
				b.staged = nil
				w.SetOutputs(rels)
			} else if len(rels) > 0 {
				if err := w.AddPaths(cache.OutputsArchive, outDir, rels); err != nil {
					return err
				}
				w.SetOutputs(rels)
				if x := b.clusterIndex; x != nil && len(rels) == 1 {
					if err := writeClusterIndex(w, x); err != nil {
						return err
					}
				}
			}
		}
		if s.Mirror {
			w.SetPackages(b.installed(sc))
		}
		cm, err := w.Commit()
		if err != nil {
			return err
		}
		if next != nil && w.Published() {
			sc.base, sc.baseKey = next, k.Key
		}
		if disk && w.Published() {
			sc.disk = cm
		}
		if len(cm.Outputs) > 0 {
			return sc.c.Place(cm, absPath(b.Options.OutputDir))
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintf(b.Log, "dib: not cached: step %s: %v\n", s.Title, err)
	}
}

// snapshotDisk adds the finished disk image to an entry when the build's
// state is a disk (a partition step ran): the snapshot point is then the
// final state, and the image is finished here rather than by the first
// output. It reports false when no disk was assembled (the state is the
// tree).
func (b *Build) snapshotDisk(ctx context.Context, w *cache.Writer) (bool, error) {
	start := time.Now()
	img, err := b.finishImage(ctx)
	if err != nil || img == "" {
		return false, err
	}
	finished := time.Since(start)
	if err := w.AddPaths(cache.DiskArchive, filepath.Dir(img), []string{filepath.Base(img)}); err != nil {
		return false, err
	}
	w.SetSnapshot(cache.Snapshot{Disk: filepath.Base(img), Finalised: b.finalised})
	fmt.Fprintf(b.Log, "dib: snapshot of the disk image written in %s (the image finished in %s)\n",
		(time.Since(start) - finished).Round(time.Millisecond), finished.Round(time.Millisecond))
	return true, nil
}

// snapshot adds the tree and the hook tree to an entry: the tree as a
// layer on the build's last snapshot when there is one, else whole. It
// returns what it saw of the tree, the base of the next layer. The
// chroot's mounts leave the tree first (they would be skipped anyway:
// the archive stays on the tree's filesystem). scripts is how many
// scripts of the step had run, for a point inside a phase.
func (b *Build) snapshot(ctx context.Context, sc *stepCache, w *cache.Writer, scripts int) (*cache.Manifest, error) {
	if err := b.teardownChroot(ctx); err != nil {
		return nil, err
	}
	tree := b.Tree()
	rel, err := filepath.Rel(b.Workspace.BuildDir, tree)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, errors.New("the tree is not in the build directory: no snapshot")
	}
	var tst, bst unix.Stat_t
	if err := unix.Stat(tree, &tst); err != nil {
		return nil, err
	}
	if err := unix.Stat(b.Workspace.BuildDir, &bst); err != nil {
		return nil, err
	}
	if tst.Dev != bst.Dev {
		return nil, errors.New("the tree is the mounted disk image: no snapshot")
	}
	start := time.Now()
	var next *cache.Manifest
	parent, kind := "", "whole"
	if sc.base != nil {
		parent, kind = sc.baseKey, "layer on "+plan.ShortID(sc.baseKey)
		next, err = w.AddLayer(cache.TreeArchive, tree, sc.base)
	} else {
		if err = w.AddTree(cache.TreeArchive, tree); err == nil {
			next, err = cache.Scan(tree)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := w.AddTree(cache.HooksArchive, b.Workspace.HooksPath); err != nil {
		return nil, err
	}
	w.SetSnapshot(cache.Snapshot{Tree: filepath.ToSlash(rel), Hooks: b.hooksWritten, Finalised: b.finalised, Parent: parent, Scripts: scripts})
	if scripts > 0 {
		kind += fmt.Sprintf(", inside the step after %d scripts", scripts)
	}
	fmt.Fprintf(b.Log, "dib: snapshot of the tree (%s) written in %s\n", kind, time.Since(start).Round(time.Millisecond))
	return next, nil
}

// recordPoint writes the entry of point q inside phase step i (the state
// after some of its scripts), unless the cache has it.
func (b *Build) recordPoint(ctx context.Context, sc *stepCache, i, q int) {
	s := &b.Plan.Steps[i]
	pt := sc.keys[i].Points[q]
	if old, _ := sc.c.Get(pt.Key); old != nil && !sc.exclude[pt.Key] && old.Snapshot != nil {
		return
	}
	stepInputs, _ := b.Plan.Explain(s.ID)
	mirrorTime := sc.mirrorTime
	if s.Mirror && (mirrorTime.IsZero() || b.stepStart.Before(mirrorTime)) {
		mirrorTime = b.stepStart.UTC()
	}
	m := cache.Meta{
		Key: pt.Key, Step: s.ID, Kind: s.Kind, Title: fmt.Sprintf("%s (through %s)", s.Title, s.Phase.Scripts[pt.Scripts-1].Name),
		Image: b.Plan.Image.Name, Index: i + 1, MirrorTime: mirrorTime, Inputs: pt.Inputs, StepInputs: stepInputs,
	}
	err := func() error {
		w, err := sc.c.Begin(m)
		if err != nil {
			return err
		}
		defer w.Abort()
		next, err := b.snapshot(ctx, sc, w, pt.Scripts)
		if err != nil {
			return err
		}
		if s.Mirror {
			w.SetPackages(b.installed(sc))
		}
		if _, err := w.Commit(); err != nil {
			return err
		}
		if w.Published() {
			sc.base, sc.baseKey = next, pt.Key
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintf(b.Log, "dib: not cached: step %s after script %d: %v\n", s.Title, pt.Scripts, err)
	}
}

// rewriteScripts writes the plan's phase scripts into a restored hook
// tree: their content is keyed by the phases that run them, not by the
// hook tree (cache.RunScripts), so the snapshot may hold older versions
// of the scripts of phases that have yet to run.
func (b *Build) rewriteScripts() error {
	scripts := cache.RunScripts(b.Plan)
	for _, f := range b.Plan.Files {
		if scripts[f.Path] == "" || scripts[f.Path] != f.SHA256 || fs.FileMode(f.Mode)&(fs.ModeDir|fs.ModeSymlink) != 0 {
			continue
		}
		dst, err := inside(b.Workspace.HooksPath, f.Path)
		if err != nil {
			return err
		}
		data, ok := b.Plan.Blob(f.SHA256)
		if !ok && f.Size > 0 {
			return fmt.Errorf("hook tree: no content for %s in the plan", f.Path)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		os.Remove(dst)
		if err := os.WriteFile(dst, data, fs.FileMode(f.Mode).Perm()); err != nil {
			return err
		}
		if err := os.Chmod(dst, fs.FileMode(f.Mode).Perm()); err != nil {
			return err
		}
	}
	return nil
}

// stagedOutput is the build cache's copy of an output, written with it.
type stagedOutput struct {
	path   string
	staged *cache.Staged
}

// matches reports whether path is the output the copy was made of, as
// large as the copy (a regular file, not replaced by a link).
func (s *stagedOutput) matches(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && absPath(path) == absPath(s.path) && fi.Mode().IsRegular() && fi.Size() == s.staged.Size()
}
