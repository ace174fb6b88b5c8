package runtime

import "context"

// FinishTree ends the chroot and does DIB's finalise_base on the tree in
// the tree, once: executors call it before they pack the tree or the
// image that holds it.
func (b *Build) FinishTree(ctx context.Context) error { return b.beforeOutputs(ctx) }
