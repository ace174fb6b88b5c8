package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/rootfs"
	"github.com/dibuild/dib/runtime/safepath"
)

// knownProvider reports whether this runtime can make the tree of bs.
func knownProvider(bs *plan.Bootstrap) bool {
	switch bs.Provider {
	case "mmdebstrap", "none":
		return true
	case "dnf":
		return bs.DNF != nil
	}
	return false
}

// bootstrapDNF makes an RPM-family tree with the host's dnf (DIB's
// yum-minimal). The package cache is per distribution, release and
// architecture under DIB_IMAGE_CACHE, like the apt one.
func (b *Build) bootstrapDNF(ctx context.Context, bs *plan.Bootstrap) error {
	n := bs.DNF
	content := map[string][]byte{}
	for _, f := range n.RepoFiles {
		data, ok := b.Plan.Blob(f.SHA256)
		if !ok {
			return fmt.Errorf("bootstrap: no content for %s in the plan", f.Path)
		}
		content[f.Path] = data
	}
	name := strings.Join([]string{n.Distro, n.Releasever, n.Arch}, "-")
	if err := safepath.Name("dnf cache name (distro-release-arch)", name); err != nil {
		return err
	}
	cache, err := safepath.Under("dnf cache", b.Options.ImageCache, filepath.Join("dnf", name))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(b.Workspace.BuildDir, "dnf-bootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	return rootfs.RunDNF(ctx, b.Shell, b.Stack, rootfs.DNFOptions{
		Plan: n, Mirror: bs.Mirror, RepoFiles: content,
		CacheDir:       cache,
		WorkDir:        work,
		Target:         b.Tree(),
		HostResolvConf: b.Options.HostResolvConf,
	})
}
