package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/qcow2"
)

// clusterIndexPayload is the payload of a compressed qcow2 output's cache
// entry that lists the image's clusters by content (qcow2.Index): the
// next build of a similar image copies the compressed clusters it shares
// with this one from the entry's outputs payload instead of deflating
// them again (runtime/qcow2/reuse.go has the numbers).
const clusterIndexPayload = "qcow2-clusters"

// qcow2Reuse is a cache entry's qcow2 image opened for a conversion's
// Reuse; close releases it.
type qcow2Reuse struct {
	ref   *qcow2.Reference
	entry *cache.Meta
	close func()
}

// qcow2Reference opens the newest compressed qcow2 output in the build
// cache that has a cluster index, one of this image's first. It returns
// nil when there is none or it cannot be used (the log says why): the
// conversion then deflates every cluster, as a cold build does.
func (b *Build) qcow2Reference() *qcow2Reuse {
	sc := b.cache
	if sc == nil {
		return nil
	}
	metas, err := sc.c.List()
	if err != nil {
		return nil
	}
	var pick *cache.Meta
	for i := len(metas) - 1; i >= 0; i-- {
		m := metas[i]
		if m.Kind != plan.KindOutput || len(m.Outputs) != 1 || sc.exclude[m.Key] || m.Payload(clusterIndexPayload) == nil {
			continue
		}
		if pick == nil || pick.Image != b.Plan.Image.Name && m.Image == b.Plan.Image.Name {
			pick = m
		}
	}
	if pick == nil {
		return nil
	}
	r, err := openQcow2Reuse(sc.c, pick)
	if err != nil {
		fmt.Fprintf(b.Log, "dib: qcow2: not copying clusters from cache entry %.12s: %v\n", pick.Key, err)
		return nil
	}
	sc.c.Used(pick.Key)
	return r
}

// openQcow2Reuse reads entry m's cluster index, checked against the sha256
// its record holds, and opens its image inside the outputs payload.
func openQcow2Reuse(c *cache.Cache, m *cache.Meta) (*qcow2Reuse, error) {
	want := ""
	if rec := m.Payload(clusterIndexPayload); rec != nil {
		want = rec.SHA256
	}
	data, err := os.ReadFile(c.Path(m.Key, clusterIndexPayload))
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
		return nil, fmt.Errorf("%w: %s: sha256 %x, recorded %.12s", cache.ErrCorrupt, clusterIndexPayload, sum[:6], want)
	}
	x, err := qcow2.ReadIndex(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	f, off, size, err := c.OutputFile(m, m.Outputs[0])
	if err != nil {
		return nil, err
	}
	ref, err := qcow2.NewReference(x, f, off, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &qcow2Reuse{ref: ref, entry: m, close: func() { f.Close() }}, nil
}

// writeClusterIndex adds the index of the qcow2 output the step wrote to
// its cache entry.
func writeClusterIndex(w *cache.Writer, x *qcow2.Index) error {
	f, err := w.Create(clusterIndexPayload, 0o600)
	if err != nil {
		return err
	}
	if _, err := x.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
