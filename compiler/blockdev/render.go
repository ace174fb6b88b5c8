package blockdev

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

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

// WriteText renders a layout as readable tables: images, partition tables
// (start, end and size in sectors, bytes and MiB), LVM, filesystems,
// mounts, fstab, the creation order and the getval values.
func WriteText(w io.Writer, l *layout.Layout) error {
	ew := &errWriter{w: w}
	section := func(title string) { ew.printf("%s\n", title) }
	tw := func() *tabwriter.Writer { return tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0) }

	section("Images")
	t := tw()
	fmt.Fprintln(t, "  NODE\tFILE\tSIZE (B)\tSIZE\tSECTOR\tDIRECTORY")
	for _, img := range l.Images {
		dir := img.Directory
		if dir == "" {
			dir = "(image dir)"
		}
		fmt.Fprintf(t, "  %s\t%s\t%d\t%s\t%d\t%s\n", img.Node, img.FileName, img.SizeBytes, FormatBytes(img.SizeBytes), img.SectorSize, dir)
	}
	_ = t.Flush()

	for _, pt := range l.PartitionTables {
		ew.printf("\nPartition table %s on %s: %s, %d-byte sectors, %d sectors", pt.Name, pt.Base, pt.Label, pt.SectorSize, pt.DiskSectors)
		if pt.Label == layout.LabelGPT {
			ew.printf(", usable LBA %d-%d", pt.FirstUsableLBA, pt.LastUsableLBA)
		} else {
			ew.printf(", alignment %s", FormatBytes(pt.AlignBytes))
		}
		ew.printf("\n")
		t := tw()
		fmt.Fprintln(t, "  #\tNODE\tSTART\tEND\tSECTORS\tSTART (B)\tSIZE (B)\tSIZE\tTYPE\tNAME\tFLAGS")
		row := func(num int, node string, start, size int64, ss int, typ, name, flags string) {
			fmt.Fprintf(t, "  %d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", num, node, start, start+size-1, size,
				start*int64(ss), size*int64(ss), FormatBytes(size*int64(ss)), typ, name, flags)
		}
		if e := pt.Extended; e != nil {
			// Listed in number order, like fdisk: primaries, extended, logicals.
			for _, p := range pt.Partitions {
				if p.Kind == layout.KindPrimary {
					row(p.Number, p.Node, p.Start, p.Size, pt.SectorSize, partType(pt, p), p.GPTName, partFlags(p))
				}
			}
			row(e.Number, "(extended)", e.Start, e.Size, pt.SectorSize, fmt.Sprintf("0x%02x", e.Type), "", "extended")
			for _, p := range pt.Partitions {
				if p.Kind == layout.KindLogical {
					row(p.Number, p.Node, p.Start, p.Size, pt.SectorSize, partType(pt, p), p.GPTName, partFlags(p))
				}
			}
		} else {
			for _, p := range pt.Partitions {
				row(p.Number, p.Node, p.Start, p.Size, pt.SectorSize, partType(pt, p), p.GPTName, partFlags(p))
			}
		}
		_ = t.Flush()
	}

	for _, lv := range l.LVM {
		ew.printf("\nLVM %s\n", lv.Node)
		t := tw()
		for _, pv := range lv.PVs {
			fmt.Fprintf(t, "  PV\t%s\ton %s\t%s\t%s\n", pv.Node, pv.Base, FormatBytes(pv.SizeBytes), strings.Join(pv.Options, " "))
		}
		for _, vg := range lv.VGs {
			fmt.Fprintf(t, "  VG\t%s\ton %s\t%d x %s extents\t%s\n", vg.Node, strings.Join(vg.PVs, ", "), vg.Extents, FormatBytes(vg.ExtentBytes), strings.Join(vg.Options, " "))
		}
		for _, v := range lv.LVs {
			req := v.Size
			if v.SizeBytes != 0 {
				req = fmt.Sprintf("%s = %d B", v.Size, v.SizeBytes)
			}
			if v.Extents != "" {
				req = fmt.Sprintf("%s (about %d extents, %s)", v.Extents, v.ExtentCount, FormatBytes(v.EstimatedBytes))
			}
			kind := "LV"
			if v.Type != "" {
				kind = "LV " + v.Type
			}
			if v.ThinPool != "" {
				kind += " in " + v.ThinPool
			}
			fmt.Fprintf(t, "  %s\t%s\ton %s\t%s\t/dev/mapper/%s\n", kind, v.Node, v.VG, req, v.MapperName)
		}
		_ = t.Flush()
	}

	ew.printf("\nFilesystems\n")
	t = tw()
	fmt.Fprintln(t, "  NODE\tON\tTYPE\tLABEL\tUUID\tMOUNT\tMKFS")
	for _, fs := range l.Filesystems {
		mp := fs.MountPoint
		if mp == "" {
			mp = "-"
		}
		fmt.Fprintf(t, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", fs.Node, fs.Base, fs.Type, fs.Label, fs.UUID, mp, strings.Join(fs.Command, " "))
	}
	_ = t.Flush()

	ew.printf("\nMounts (in mount order; unmount in reverse)\n")
	t = tw()
	for _, m := range l.Mounts {
		fmt.Fprintf(t, "  %d\t%s\t%s\t%s\n", m.Order+1, m.MountPoint, m.Node, m.Filesystem)
	}
	_ = t.Flush()

	ew.printf("\nfstab\n")
	for _, e := range l.Fstab {
		ew.printf("  %s\n", e.Line)
	}

	ew.printf("\nCreation order (cleanup runs in reverse)\n")
	t = tw()
	for i, s := range l.CreationOrder {
		fmt.Fprintf(t, "  %d\t%s\t%s\n", i+1, s.Node, s.Kind)
	}
	_ = t.Flush()

	ew.printf("\ngetval\n")
	t = tw()
	gv := l.GetVal
	for _, kv := range [][2]string{{"root-label", gv.RootLabel}, {"root-fstype", gv.RootFSType}, {"boot-label", gv.BootLabel}, {"mount-points", gv.MountPoints}} {
		v := kv[1]
		if e, ok := gv.Errors[kv[0]]; ok {
			v = "error: " + e
		}
		fmt.Fprintf(t, "  %s\t%s\n", kv[0], v)
	}
	_ = t.Flush()
	return ew.err
}

func partType(pt layout.PartitionTable, p layout.Partition) string {
	if pt.Label == layout.LabelGPT {
		return p.GPTTypeCode + " " + p.GPTType
	}
	return fmt.Sprintf("0x%02x", p.MBRType)
}

func partFlags(p layout.Partition) string {
	var f []string
	if p.Boot {
		f = append(f, "boot")
	}
	if p.MBRType != 0 {
		f = append(f, p.Kind)
	}
	if len(f) == 0 {
		return "-"
	}
	return strings.Join(f, ",")
}

// errWriter keeps the first write error so rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
