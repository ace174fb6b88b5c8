package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan/layout"
)

// lvmConfig keeps the lvm tools away from the host: only our loop devices
// are scanned, nothing is activated (there is no device-mapper here), no
// udev, no backup/archive files in the host's /etc/lvm.
func lvmConfig(devs []string) string {
	var accept []string
	for _, d := range devs {
		accept = append(accept, fmt.Sprintf(`"a|^%s$|"`, d))
	}
	accept = append(accept, `"r|.*|"`)
	f := strings.Join(accept, ",")
	return "devices{obtain_device_list_from_udev=0 use_devicesfile=0 filter=[" + f + "] global_filter=[" + f + "]}" +
		" activation{udev_sync=0 udev_rules=0 monitoring=0}" +
		" global{activation=0}" +
		" backup{backup=0 archive=0}"
}

// lvm writes the PV, VG and LV metadata of every LVM entry with the lvm
// tools on loop devices over the PV partitions, with activation disabled
// (`global/activation=0`, `--driverloaded n`), then reads back where LVM
// put each logical volume. The result is metadata any LVM host
// recognises; the LVs are then filled at their byte offsets like any other
// volume. Thin pools cannot be made this way (checked earlier).
func (a *assembly) lvm() error {
	sysdir := filepath.Join(a.work, "lvm")
	if err := os.MkdirAll(sysdir, 0o755); err != nil {
		return err
	}
	env := []string{"LVM_SYSTEM_DIR=" + sysdir, "LVM_SUPPRESS_FD_WARNINGS=1"}
	for _, g := range a.in.Layout.LVM {
		mark := a.stack.Mark()
		if err := a.lvmGroup(env, g.Node); err != nil {
			return joinErr(fmt.Errorf("disk: lvm %s: %w", g.Node, err), a.release(mark))
		}
		if err := a.release(mark); err != nil {
			return err
		}
	}
	return nil
}

// lvmGroup creates the physical volumes, volume groups and logical
// volumes of one LVM group of the layout, then reads LVM's pvs and lvs
// reports for where each logical volume's extents are and records it as
// a byte range of the image (filesystems are made without device-mapper;
// a volume that is not one linear segment gets none). It is about 120
// lines because the commands and the reading of their reports share the
// group's devices and LVM configuration, in the order LVM needs them.
func (a *assembly) lvmGroup(env []string, node string) error {
	var g layout.LVM
	for _, x := range a.in.Layout.LVM {
		if x.Node == node {
			g = x
		}
	}
	devs := map[string]string{}  // PV node → loop device
	pvVol := map[string]Volume{} // loop device → its volume
	var all []string
	for _, pv := range g.PVs {
		v, err := a.volume(pv.Base)
		if err != nil {
			return fmt.Errorf("pv %s: %w", pv.Node, err)
		}
		dev, err := a.losetup(a.tmpPath, v.Offset, v.Size, false)
		if err != nil {
			return err
		}
		devs[pv.Node] = dev
		pvVol[dev] = v
		all = append(all, dev)
	}
	conf := "--config=" + lvmConfig(all)
	for _, pv := range g.PVs {
		argv := append([]string{"pvcreate", conf, "-ff", "-y"}, pv.Options...)
		if err := a.run(env, append(argv, devs[pv.Node])...); err != nil {
			return err
		}
	}
	for _, vg := range g.VGs {
		argv := []string{"vgcreate", conf, vg.Node}
		for _, pv := range vg.PVs {
			d, ok := devs[pv]
			if !ok {
				return fmt.Errorf("vg %s: unknown pv %s", vg.Node, pv)
			}
			argv = append(argv, d)
		}
		if err := a.run(env, append(argv, vg.Options...)...); err != nil {
			return err
		}
	}
	for _, lv := range g.LVs {
		argv := []string{"lvcreate", conf, "--driverloaded", "n", "--activate", "n", "--zero", "n", "--name", lv.Node}
		switch {
		case lv.Extents != "":
			argv = append(argv, "-l", lv.Extents)
		case lv.SizeBytes > 0:
			argv = append(argv, "-L", strconv.FormatInt(lv.SizeBytes, 10)+"B")
		default:
			return fmt.Errorf("lv %s has neither size nor extents", lv.Node)
		}
		argv = append(argv, lv.Options...)
		if err := a.run(env, append(argv, lv.VG)...); err != nil {
			return err
		}
	}

	// Where did LVM put the extents?
	out, err := a.output(env, "pvs", conf, "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "-o", "pv_name,pe_start")
	if err != nil {
		return err
	}
	peStart := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("pvs: %q: %w", line, err)
		}
		peStart[f[0]] = n
	}
	out, err = a.output(env, "lvs", conf, "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "--segments",
		"-o", "vg_name,lv_name,vg_extent_size,seg_pe_ranges")
	if err != nil {
		return err
	}
	segs := map[string][]string{}
	ext := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 4 {
			continue
		}
		key := f[0] + "/" + f[1]
		segs[key] = append(segs[key], strings.TrimSpace(f[3]))
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("lvs: %q: %w", line, err)
		}
		ext[key] = n
	}
	for _, lv := range g.LVs {
		key := lv.VG + "/" + lv.Node
		ranges := segs[key]
		if len(ranges) != 1 || strings.Contains(ranges[0], " ") {
			// A filesystem needs one contiguous byte range.
			a.noVolume[lv.Node] = fmt.Sprintf("logical volume %s is not one contiguous range (%q): without device-mapper a filesystem can only be made on a single linear segment", key, ranges)
			continue
		}
		dev, rng, ok := strings.Cut(ranges[0], ":")
		first, last, ok2 := strings.Cut(rng, "-")
		if !ok || !ok2 {
			return fmt.Errorf("lvs: cannot parse segment %q of %s", ranges[0], key)
		}
		s, err1 := strconv.ParseInt(first, 10, 64)
		e, err2 := strconv.ParseInt(last, 10, 64)
		v, ok := pvVol[dev]
		if err1 != nil || err2 != nil || !ok {
			return fmt.Errorf("lvs: cannot place segment %q of %s", ranges[0], key)
		}
		a.vols[lv.Node] = Volume{
			Node:   lv.Node,
			Offset: v.Offset + peStart[dev] + s*ext[key],
			Size:   (e - s + 1) * ext[key],
		}
	}
	return nil
}
