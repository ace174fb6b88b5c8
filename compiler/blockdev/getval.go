package blockdev

import (
	"github.com/dibuild/dib/compiler/plan/layout"
)

// GetVal returns DIB's getval values right after cmd_init (before any disk
// exists): disk-image-create reads root-fstype there to decide on the ext4
// root options (DefaultRootFSOpts).
func GetVal(cfg *Config, p Params) layout.GetVal {
	if cfg == nil {
		return layout.GetVal{}
	}
	return getval(FinalConfig(cfg, p))
}
