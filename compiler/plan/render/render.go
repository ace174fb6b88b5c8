// Package render writes plans, plan diffs and diagnostics for people (text),
// for programs (JSON) and for Graphviz (DOT). Commands never format output
// themselves; they pick a renderer and hand it an io.Writer.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
)

// Options control the text renderings.
type Options struct {
	// Color uses ANSI colours (only on a terminal).
	Color bool
	// Verbose shows the environment.d files of every phase and the full
	// step IDs.
	Verbose bool
	// Cache maps a step ID to what the build cache will do with it
	// ("cached: …", "will run: …"); shown under the step's title.
	Cache map[string]string
}

type printer struct {
	w   io.Writer
	opt Options
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format, args...)
}

func (p *printer) style(code, s string) string {
	if !p.opt.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p *printer) heading(s string) { p.printf("\n%s\n", p.style("1", s)) }

// table writes rows aligned in columns, indented by two spaces.
func (p *printer) table(rows [][]string) {
	if p.err != nil || len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\n", strings.TrimRight(strings.Join(r, "\t"), "\t"))
	}
	p.err = tw.Flush()
}

// maxEnvShown is the longest variable value the text plan shows whole.
const maxEnvShown = 160

// Text renders a plan for a person reading it top to bottom: what is built,
// the elements and who provides what, the environment (secrets hidden), the
// steps with their scripts and packages, the disk layout, the outputs and
// the host tools.
func Text(w io.Writer, pl *plan.Plan, opt Options) error {
	pl = escaped(pl)
	p := &printer{w: w, opt: opt}
	for _, section := range []func(*plan.Plan){p.header, p.elements, p.environment, p.steps, p.layouts, p.outputs, p.differences, p.hostTools, p.warnings} {
		section(pl)
	}
	return p.err
}

// header is the image: name, distro, release, where it comes from.
func (p *printer) header(pl *plan.Plan) {
	img := pl.Image
	p.printf("%s %s  %s\n", p.style("1", "Plan for image"), p.style("1;36", img.Name), p.style("2", "plan "+plan.ShortID(pl.ID)))
	p.printf("  distro %s (%s family), release %s, arch %s", img.Distro, img.Family, orDash(img.Release), img.Arch)
	if img.Ramdisk {
		p.printf(", ramdisk")
	}
	p.printf("\n")
	if img.Source != "" {
		p.printf("  from %s\n", img.Source)
	}
	switch pl.SourceDateEpochFrom {
	case "":
		p.printf("  outputs reproducible: SOURCE_DATE_EPOCH=%d (source-date-epoch; later file times clamped to it)\n", pl.SourceDateEpoch)
	case plan.EpochFromPackages:
		p.printf("  outputs reproducible: SOURCE_DATE_EPOCH from the packages (the newest installed package's date, read from the tree's dpkg database at build time, 0 without one; later file times clamped to it)\n")
	default:
		p.printf("  outputs reproducible: SOURCE_DATE_EPOCH from %s (later file times clamped to it)\n", pl.SourceDateEpochFrom)
	}
}

// elements lists the resolved elements and what they provide.
func (p *printer) elements(pl *plan.Plan) {
	p.heading(fmt.Sprintf("Elements (%d)", len(pl.Elements)))
	p.printf("  requested: %s\n", strings.Join(pl.Image.Requested, " "))
	var rows [][]string
	for _, e := range pl.Elements {
		extra := ""
		if len(e.Provides) > 0 {
			extra = "provides " + strings.Join(e.Provides, ", ")
		}
		rows = append(rows, []string{e.Name, e.Source, extra})
	}
	p.table(rows)
	p.printf("  %s\n", p.style("2", "hooks get each element's directory in IMAGE_ELEMENT_YAML and get_image_element_array (host hooks): built-in elements at $TMP_BUILD_DIR/"+plan.ElementsDir+"/NAME, the others in their elements-path directory"))
}

// environment lists the variables with their origins, secrets hidden.
func (p *printer) environment(pl *plan.Plan) {
	p.heading("Environment")
	var rows [][]string
	var identity []string
	for _, v := range pl.Env {
		val := v.Value
		if strings.ContainsFunc(val, unicode.IsControl) {
			val = strconv.Quote(val) // one line per variable
		}
		if len(val) > maxEnvShown {
			// The whole value is in the JSON plan.
			val = fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(val[:maxEnvShown-20], ""), len(v.Value))
		}
		if v.Secret {
			val = p.style("33", plan.Redacted)
			if v.Missing {
				val += p.style("31", " (missing: set $"+v.FromEnv+" for apply)")
			}
		}
		rows = append(rows, []string{v.Name + "=" + val, p.style("2", v.Origin.String())})
		if v.Identity {
			identity = append(identity, v.Name)
		}
	}
	p.table(rows)
	if len(identity) > 0 {
		p.printf("  %s\n", p.style("2", "the image's identity: "+strings.Join(identity, " ")+
			" (in a phase's cache key only where a file it runs names them: images differing in them share the others)"))
	}
}

// steps lists the steps with their details.
func (p *printer) steps(pl *plan.Plan) {
	p.heading(fmt.Sprintf("Steps (%d)", len(pl.Steps)))
	for i, s := range pl.Steps {
		id := plan.ShortID(s.ID)
		if p.opt.Verbose {
			id = s.ID
		}
		where := ""
		if s.Where != "" {
			where = " [" + s.Where + "]"
		}
		snap := ""
		if s.Snapshot {
			snap = "  " + p.style("36", "snapshot")
		}
		p.printf("%3d. %s%s  %s%s\n", i+1, p.style("1", s.Title), where, p.style("2", id), snap)
		if st, ok := p.opt.Cache[s.ID]; ok {
			code := "33"
			if strings.HasPrefix(st, "cached") {
				code = "32"
			}
			p.printf("      %s\n", p.style(code, st))
		}
		stepDetail(p, pl, &s)
	}
}

// layouts shows the disk layout of each partition step.
func (p *printer) layouts(pl *plan.Plan) {
	for _, s := range pl.Steps {
		if s.Partition != nil && s.Partition.Layout != nil {
			p.heading("Disk layout")
			if !s.Partition.SizeKnown {
				p.printf("  image size computed at build time; shown at %s\n", humanBytes(s.Partition.PreviewSize))
			}
			Layout(p.w, s.Partition.Layout)
		}
	}
}

// outputs lists the outputs.
func (p *printer) outputs(pl *plan.Plan) {
	p.heading("Outputs")
	var rows [][]string
	for _, o := range pl.Outputs {
		var extra []string
		if o.Compress {
			extra = append(extra, "compressed")
		}
		if o.Subformat != "" {
			extra = append(extra, "subformat "+o.Subformat)
		}
		if o.DockerTarget != "" {
			extra = append(extra, "tag "+o.DockerTarget)
		}
		for _, kv := range sortedKV(o.QemuImgOptions) {
			extra = append(extra, kv)
		}
		for _, c := range o.Checksums {
			extra = append(extra, o.Path+"."+c)
		}
		rows = append(rows, []string{o.Format, o.Path, strings.Join(extra, ", ")})
	}
	p.table(rows)
	if len(rows) == 0 {
		p.printf("  none (what elements write beside the image, e.g. NAME.kernel and NAME.initramfs, only)\n")
	}
}

// differences lists what dib installs differently from DIB.
func (p *printer) differences(pl *plan.Plan) {
	if len(pl.PackageDifferences) > 0 {
		p.heading("Differences from DIB's packages")
		for _, d := range pl.PackageDifferences {
			el := ""
			if d.Element != "" {
				el = " (element " + d.Element + ")"
			}
			p.printf("  note: %s %s%s: %s\n", d.Change, strings.Join(d.Packages, " "), el, d.Reason)
		}
	}
}

// hostTools lists the host tools, with what is missing.
func (p *printer) hostTools(pl *plan.Plan) {
	p.heading("Host tools")
	var rows [][]string
	var missing []string
	for _, t := range pl.HostTools {
		state := ""
		if t.Found != nil {
			if *t.Found {
				state = p.style("32", "found")
			} else {
				state = p.style("31", "MISSING")
				missing = append(missing, t.Package)
			}
		}
		rows = append(rows, []string{t.Program, t.Package, state})
	}
	p.table(rows)
	if len(missing) > 0 {
		p.printf("  %s apt-get install %s\n", p.style("31", "install the missing tools with:"), strings.Join(slices.Compact(slices.Sorted(slices.Values(missing))), " "))
	}
}

// warnings lists the warnings.
func (p *printer) warnings(pl *plan.Plan) {
	if len(pl.Diagnostics) > 0 {
		p.heading("Warnings")
		for _, d := range pl.Diagnostics {
			p.printf("  %s\n", d.Error())
			if d.Hint != "" {
				p.printf("    hint: %s\n", d.Hint)
			}
		}
	}
}

func stepDetail(p *printer, pl *plan.Plan, s *plan.Step) {
	switch {
	case s.Bootstrap != nil && s.Bootstrap.DNF != nil:
		dnfDetail(p, s.Bootstrap)
	case s.Bootstrap != nil && s.Bootstrap.Provider == "none":
		p.printf("      none: %s\n", s.Bootstrap.Reason)
	case s.Bootstrap != nil:
		bootstrapDetail(p, s.Bootstrap)
	case s.Hooks != nil:
		p.printf("      %d files from %d elements\n", s.Hooks.Files, len(pl.Elements))
		for _, g := range s.Hooks.Generated {
			p.printf("      + %s\n", g.Path)
		}
	case s.Phase != nil:
		phaseDetail(p, s)
	case s.Packages != nil:
		p.printf("      install-packages %s\n", strings.Join(s.Packages.Names, " "))
	case s.ImageSize != nil:
		if s.ImageSize.Bytes > 0 {
			p.printf("      %s (%d bytes), given in the Dibfile\n", humanBytes(s.ImageSize.Bytes), s.ImageSize.Bytes)
		} else {
			p.printf("      %s\n", s.ImageSize.Rule)
		}
	case s.Partition != nil && s.Partition.Layout != nil:
		for _, t := range s.Partition.Layout.PartitionTables {
			p.printf("      %s table on %s, %d partitions\n", t.Label, t.Base, len(t.Partitions))
		}
		for _, f := range s.Partition.Layout.Filesystems {
			p.printf("      %s %s label %q uuid %s", f.Node, f.Type, f.Label, f.UUID)
			if f.MountPoint != "" {
				p.printf(" at %s", f.MountPoint)
			}
			p.printf("\n")
		}
	case s.Bootloader != nil:
		b := s.Bootloader
		var kinds []string
		if b.BIOS {
			kinds = append(kinds, "BIOS")
		}
		if b.UEFI {
			kinds = append(kinds, "UEFI")
		}
		p.printf("      GRUB for %s, timeout %d", strings.Join(kinds, " and "), b.Timeout)
		if b.Serial {
			p.printf(", serial console")
		}
		p.printf("\n")
	case s.Output != nil:
		p.printf("      %s\n", s.Output.Path)
	case s.Checksum != nil:
		p.printf("      %s of %s\n", strings.Join(s.Checksum.Algorithms, ", "), s.Checksum.Path)
	case s.Manifest != nil:
		p.printf("      %s\n", s.Manifest.Dir)
	}
	if len(s.Tools) > 0 && p.opt.Verbose {
		p.printf("      tools: %s\n", strings.Join(s.Tools, " "))
	}
}

// dnfDetail describes a dnf (yum-minimal) bootstrap.
func dnfDetail(p *printer, b *plan.Bootstrap) {
	n := b.DNF
	p.printf("      dnf (yum-minimal) %s %s, %s, rpmdb %s", n.Distro, b.Suite, n.Arch, n.RPMDBPath)
	if b.Mirror != "" {
		p.printf(", mirror %s", b.Mirror)
	}
	p.printf("\n")
	switch {
	case n.ReposDir != "":
		p.printf("      repositories: %s (DIB_YUM_MINIMAL_BOOTSTRAP_REPOS; in the tree during the build only)\n", n.ReposDir)
	case len(n.RepoFiles) > 0:
		var names []string
		for _, f := range n.RepoFiles {
			names = append(names, f.Path)
		}
		p.printf("      repositories: %s", strings.Join(names, " "))
		if b.Mirror != "" {
			p.printf(" (@MIRROR@ = %s)", b.Mirror)
		}
		p.printf("\n")
	default:
		p.printf("      repositories: %s\n", p.style("31", "none: set DIB_YUM_MINIMAL_BOOTSTRAP_REPOS"))
	}
	if n.ExtraReposDir != "" {
		p.printf("      extra repositories: %s (DIB_YUM_MINIMAL_EXTRA_REPOS)\n", n.ExtraReposDir)
	}
	for _, l := range n.Describe() {
		p.printf("      $ %s\n", l)
	}
	if !b.Available {
		p.printf("      %s %s\n", p.style("31", "not available:"), b.Reason)
	}
}

// bootstrapDetail describes an mmdebstrap bootstrap.
func bootstrapDetail(p *printer, b *plan.Bootstrap) {
	p.printf("      %s %s from %s", b.Provider, b.Suite, b.Mirror)
	if len(b.Components) > 0 {
		p.printf(" (%s)", strings.Join(b.Components, ","))
	}
	if b.Variant != "" {
		p.printf(", variant %s", b.Variant)
	}
	p.printf("\n")
	for _, src := range b.Sources {
		p.printf("      + %s\n", src)
	}
	if len(b.Keyrings) > 0 {
		p.printf("      keyring: %s\n", strings.Join(b.Keyrings, " "))
	}
	if len(b.ExtraArgs) > 0 {
		p.printf("      mmdebstrap options: %s\n", strings.Join(b.ExtraArgs, " "))
	}
	if len(b.Include) > 0 {
		p.printf("      include: %s\n", strings.Join(b.Include, " "))
	}
	if !b.Available {
		p.printf("      %s %s\n", p.style("31", "not available:"), b.Reason)
	}
}

// phaseDetail lists a phase's environment.d files, scripts, packages and
// skipped scripts.
func phaseDetail(p *printer, s *plan.Step) {
	ph := s.Phase
	if p.opt.Verbose && len(ph.EnvironmentD) > 0 {
		var names []string
		for _, e := range ph.EnvironmentD {
			names = append(names, e.Name)
		}
		p.printf("      environment.d: %s\n", strings.Join(names, " "))
	} else if len(ph.EnvironmentD) > 0 {
		p.printf("      sources %d environment.d files\n", len(ph.EnvironmentD))
	}
	var rows [][]string
	for _, sc := range ph.Scripts {
		row := []string{"  " + sc.Name, sc.Element, p.style("2", short(sc.SHA256))}
		if slices.Contains(s.SnapshotAfter, sc.Name) {
			row = append(row, p.style("36", "snapshot"))
		}
		rows = append(rows, row)
	}
	p.table(indent(rows))
	for _, pk := range ph.Packages {
		verb := "install"
		if pk.Uninstall {
			verb = "uninstall"
		}
		mapped := strings.Join(pk.Mapped, " ")
		if len(pk.Mapped) == 0 {
			mapped = "(dropped)"
		}
		if mapped == pk.Name {
			p.printf("      %s %s  (element %s)\n", verb, pk.Name, pk.Element)
		} else {
			p.printf("      %s %s → %s  (%s)\n", verb, pk.Name, mapped, pk.MapNote)
		}
	}
	for _, sk := range ph.Skipped {
		p.printf("      %s %s (%s): %s\n", p.style("2", "skipped"), sk.Name, sk.Element, sk.Reason)
	}
}

func indent(rows [][]string) [][]string {
	for i := range rows {
		rows[i][0] = "  " + rows[i][0]
	}
	return rows
}

// Layout renders a disk layout as tables: partition tables, LVM,
// filesystems, mounts, fstab and the creation order.
func Layout(w io.Writer, l *layout.Layout) error {
	l = escaped(l)
	p := &printer{w: w}
	for _, img := range l.Images {
		p.printf("  image %s: %s (%d bytes), %d-byte sectors\n", img.Node, humanBytes(img.SizeBytes), img.SizeBytes, img.SectorSize)
	}
	for _, t := range l.PartitionTables {
		p.printf("\n  %s partition table %q on %s: %d sectors of %d bytes", strings.ToUpper(t.Label), t.Name, t.Base, t.DiskSectors, t.SectorSize)
		if t.Label == layout.LabelGPT {
			p.printf(", usable LBA %d–%d", t.FirstUsableLBA, t.LastUsableLBA)
		}
		p.printf("\n")
		rows := [][]string{{"#", "node", "start", "end", "sectors", "offset (bytes)", "size", "type", "name/flags"}}
		for _, pt := range t.Partitions {
			typ := pt.GPTTypeCode
			if t.Label == layout.LabelMBR {
				typ = fmt.Sprintf("0x%02x", pt.MBRType)
			}
			var flags []string
			if pt.GPTName != "" {
				flags = append(flags, pt.GPTName)
			}
			if pt.Kind == layout.KindLogical {
				flags = append(flags, "logical")
			}
			flags = append(flags, pt.Flags...)
			rows = append(rows, []string{fmt.Sprint(pt.Number), pt.Node, fmt.Sprint(pt.Start), fmt.Sprint(pt.Start + pt.Size - 1),
				fmt.Sprint(pt.Size), fmt.Sprint(pt.StartBytes), humanBytes(pt.SizeBytes), typ, strings.Join(uniqKeep(flags), ",")})
		}
		if e := t.Extended; e != nil {
			rows = append(rows, []string{fmt.Sprint(e.Number), "(extended)", fmt.Sprint(e.Start), fmt.Sprint(e.Start + e.Size - 1),
				fmt.Sprint(e.Size), fmt.Sprint(e.StartBytes), humanBytes(e.SizeBytes), fmt.Sprintf("0x%02x", e.Type), ""})
		}
		p.table(rows)
	}
	for _, lv := range l.LVM {
		p.printf("\n  LVM %s\n", lv.Node)
		var rows [][]string
		for _, pv := range lv.PVs {
			rows = append(rows, []string{"pv", pv.Node, "on " + pv.Base, humanBytes(pv.SizeBytes)})
		}
		for _, vg := range lv.VGs {
			rows = append(rows, []string{"vg", vg.Node, "pvs " + strings.Join(vg.PVs, ","), fmt.Sprintf("%d extents of %s", vg.Extents, humanBytes(vg.ExtentBytes))})
		}
		for _, v := range lv.LVs {
			size := v.Size
			if size == "" {
				size = v.Extents + " extents"
			}
			kind := v.Type
			if v.ThinPool != "" {
				kind += " in " + v.ThinPool
			}
			rows = append(rows, []string{"lv", v.Node, "vg " + v.VG, size + " ≈ " + humanBytes(v.EstimatedBytes), kind})
		}
		p.table(rows)
	}
	if len(l.Filesystems) > 0 {
		p.printf("\n  filesystems\n")
		rows := [][]string{{"node", "on", "type", "label", "uuid", "mount", "options"}}
		for _, f := range l.Filesystems {
			rows = append(rows, []string{f.Node, f.Base, f.Type, f.Label, f.UUID, orDash(f.MountPoint), strings.Join(f.Opts, " ")})
		}
		p.table(rows)
	}
	if len(l.Fstab) > 0 {
		p.printf("\n  fstab\n")
		for _, f := range l.Fstab {
			p.printf("    %s\n", f.Line)
		}
	}
	if len(l.CreationOrder) > 0 {
		var names []string
		for _, s := range l.CreationOrder {
			names = append(names, s.Node)
		}
		p.printf("\n  creation order: %s\n", strings.Join(names, " → "))
	}
	gv := l.GetVal
	var vals []string
	for _, kv := range [][2]string{{"root-label", gv.RootLabel}, {"root-fstype", gv.RootFSType}, {"boot-label", gv.BootLabel}, {"mount-points", gv.MountPoints}} {
		v := kv[1]
		if e, ok := gv.Errors[kv[0]]; ok {
			v = "(error: " + e + ")"
		}
		if v != "" {
			vals = append(vals, kv[0]+"="+v)
		}
	}
	if len(vals) > 0 {
		p.printf("  getval: %s\n", strings.Join(vals, " "))
	}
	return p.err
}

// JSON writes any value as indented JSON (the plan's own WriteJSON is used
// for plans so that plan files and `dib plan --json` are the same bytes).
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// DOT renders the step graph for Graphviz. Nodes follow the plan's step
// order and edges are sorted, so the output is deterministic.
func DOT(w io.Writer, pl *plan.Plan) error {
	p := &printer{w: w}
	p.printf("digraph plan {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n")
	for _, s := range pl.Steps {
		shape := ""
		switch s.Kind {
		case plan.KindOutput, plan.KindChecksum:
			shape = ", shape=note"
		case plan.KindPhase:
			if s.Where == plan.Chroot {
				shape = ", style=filled, fillcolor=\"#e8f0ff\""
			}
		}
		p.printf("  %q [label=%q%s];\n", plan.ShortID(s.ID), s.Title+"\n"+plan.ShortID(s.ID), shape)
	}
	var edges []string
	for _, s := range pl.Steps {
		for _, d := range s.Deps {
			edges = append(edges, fmt.Sprintf("  %q -> %q;\n", plan.ShortID(d), plan.ShortID(s.ID)))
		}
	}
	sort.Strings(edges)
	for _, e := range edges {
		p.printf("%s", e)
	}
	p.printf("}\n")
	return p.err
}

func short(sha string) string {
	if len(sha) > 12 {
		return "sha256:" + sha[:12]
	}
	return sha
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKV(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func uniqKeep(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// humanBytes renders a size in binary units: "4 GiB", "512 MiB", "1.5 KiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}
