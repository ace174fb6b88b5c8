package main

import (
	"path/filepath"

	"encoding/json"
	"fmt"
	"github.com/dibuild/dib/spec"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec/diag"
)

// ElementsCmd resolves elements like DIB's element-info: the expanded list,
// what provides what, where each element comes from, and each phase's
// scripts in run order.
type ElementsCmd struct {
	Elements       []string `arg:"" optional:"" name:"element" help:"Elements, as on the disk-image-create command line."`
	ElementsPath   []string `name:"elements-path" sep:":" placeholder:"DIR" help:"Element directory searched before the built-in elements (repeatable, or colon-separated like ELEMENTS_PATH); the first match wins."`
	Arch           string   `short:"a" default:"amd64" help:"Image architecture (DIB's ARCH, -a)."`
	SkipBase       bool     `short:"n" name:"skip-base" help:"Do not add the base element (disk-image-create -n)."`
	RamdiskElement string   `name:"ramdisk-element" placeholder:"ELEMENT" help:"Resolve as ramdisk-image-create does, with this RAMDISK_ELEMENT (DIB's default is ramdisk)."`
	InstallType    string   `name:"install-type" placeholder:"TYPE" help:"Default install type (DIB_DEFAULT_INSTALLTYPE; default source)."`
	JSON           bool     `name:"json" xor:"format" help:"Print the resolution as JSON."`
	DOT            bool     `name:"dot" xor:"format" help:"Print the dependency graph in Graphviz DOT."`
	List           bool     `name:"list" xor:"format" help:"Print only the expanded element names, one per line (without elements: dib's built-in elements)."`
	File           string   `short:"f" placeholder:"DIBFILE" help:"Take the elements, arch, elements-path, skip-base and ramdisk settings from a Dibfile."`
	Image          string   `placeholder:"NAME" help:"With -f: the image of a multi-image Dibfile (default: the first)."`
}

// Help is shown by `dib elements --help`.
func (ElementsCmd) Help() string {
	return `Resolves elements with diskimage-builder's rules (element-deps, element-provides,
the vm defaults, base) and shows the merged hooks in the order DIB runs them.

Examples:
  dib elements debian-minimal vm
  dib elements --elements-path ./my-elements ubuntu-minimal vm my-element
  dib elements --dot debian-minimal vm | dot -Tsvg > elements.svg`
}

// Run resolves and renders.
func (c *ElementsCmd) Run(g *Globals) error {
	if c.File != "" {
		if err := c.fromDibfile(g); err != nil {
			return err
		}
	}
	if len(c.Elements) == 0 && c.List {
		// Without elements, --list lists dib's built-in elements.
		for _, n := range elements.Names() {
			fmt.Fprintln(g.Stdout, n)
		}
		return nil
	}
	if len(c.Elements) == 0 {
		fmt.Fprintln(g.Stderr, "dib elements: at least one element must be named (DIB: At least one distribution root element must be specified)")
		return exitError{code: exitUsage}
	}
	var path []element.Source
	for _, d := range c.ElementsPath {
		if d != "" {
			path = append(path, element.Source{Name: d, FS: os.DirFS(d)})
		}
	}
	path = append(path, element.Source{Name: element.BuiltinName, FS: elements.FS()})
	res, ds := element.Resolve(element.Options{
		Path: path, Elements: c.Elements, Arch: c.Arch, SkipBase: c.SkipBase,
		Ramdisk: c.RamdiskElement != "", RamdiskElement: c.RamdiskElement,
		DefaultInstallType: c.InstallType,
	})
	var err error
	switch {
	case c.JSON:
		err = writeElementsJSON(g.Stdout, res, ds)
	case ds.HasErrors():
	case c.DOT:
		err = res.WriteDOT(g.Stdout)
	case c.List:
		for _, e := range res.Expanded {
			fmt.Fprintln(g.Stdout, e)
		}
	default:
		err = writeElementsText(g.Stdout, res)
	}
	if err != nil {
		return err
	}
	if !c.JSON && len(ds) > 0 {
		if err := ds.WriteText(g.Stderr); err != nil {
			return err
		}
	}
	if ds.HasErrors() {
		return exitError{code: exitFailed}
	}
	return nil
}

func writeElementsJSON(w io.Writer, res *element.Result, ds diag.Diagnostics) error {
	if ds == nil {
		ds = diag.Diagnostics{}
	}
	out := struct {
		*element.Result
		BlockDeviceConfigSource string           `json:"block_device_config_source,omitempty"`
		Diagnostics             diag.Diagnostics `json:"diagnostics"`
	}{Result: res, Diagnostics: ds}
	if res.Failure == nil {
		out.BlockDeviceConfigSource = res.BlockDevice.Label
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeElementsText(w io.Writer, res *element.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Elements requested: %s\n", strings.Join(res.Input, " "))
	fmt.Fprintf(tw, "Expanded to %d elements:\n", len(res.Expanded))
	for _, e := range res.Elements {
		loc := e.Source + "/" + e.Dir
		if e.Source == element.BuiltinName {
			loc = element.BuiltinName + ":" + e.Dir
		}
		if len(e.Hides) > 0 {
			loc += "\t(hides " + strings.Join(e.Hides, ", ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", e.Name, loc)
	}
	if len(res.Provided) > 0 {
		fmt.Fprintln(tw, "Provided:")
		for _, p := range res.Provided {
			fmt.Fprintf(tw, "  %s\tby %s\n", p, strings.Join(res.ProvidedBy[p], ", "))
		}
	}
	fmt.Fprintf(tw, "Block-device config: %s\n", res.BlockDevice.Label)
	fmt.Fprintln(tw, "Phases:")
	for _, p := range res.Phases {
		switch {
		case !p.Present:
			fmt.Fprintf(tw, "  %s (%s): no directory, skipped\n", p.Name, p.Where)
			continue
		case len(p.Run) == 0:
			fmt.Fprintf(tw, "  %s (%s): no scripts\n", p.Name, p.Where)
		default:
			fmt.Fprintf(tw, "  %s (%s)\n", p.Name, p.Where)
		}
		for _, s := range p.Run {
			note := ""
			if s.LinkedBy != "" {
				note = "\t(linked by " + s.LinkedBy + " from " + s.Target + ")"
			}
			fmt.Fprintf(tw, "    %s\t%s%s\n", s.Name, s.Element, note)
		}
		for _, s := range p.Skipped {
			fmt.Fprintf(tw, "    (skipped) %s\t%s\t%s\n", s.Name, strings.Join(s.Elements, ", "), s.Reason)
		}
	}
	fmt.Fprintln(tw, "environment.d (sourced before each phase):")
	inRoot := map[string]bool{}
	for _, e := range res.EnvironmentDRoot {
		inRoot[e.File+"\x00"+e.Element] = true
	}
	for _, e := range res.EnvironmentD {
		note := ""
		if !inRoot[e.File+"\x00"+e.Element] {
			note = "\tnot in root.d"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", e.File, e.Element, note)
	}
	for _, d := range res.OtherDirs {
		fmt.Fprintf(tw, "Other directory %s (not run by dib-run-parts): %s\n", d.Name, strings.Join(d.Entries, " "))
	}
	return tw.Flush()
}

// fromDibfile fills the flags from one image of a Dibfile, as `dib plan`
// would resolve it (the Dibfile's elements-path is relative to its folder).
func (c *ElementsCmd) fromDibfile(g *Globals) error {
	name, src, err := g.readInput(c.File)
	if err != nil {
		return err
	}
	f, ds := spec.Load(name, src, g.lookupEnv)
	if ds.HasErrors() {
		_ = ds.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	img := f.Images[0]
	if c.Image != "" {
		img = nil
		for _, i := range f.Images {
			if i.Name == c.Image {
				img = i
			}
		}
		if img == nil {
			return fmt.Errorf("%s has no image named %q", c.File, c.Image)
		}
	}
	c.Elements = append(img.ElementNames(), c.Elements...)
	c.Arch, c.SkipBase = img.Arch, img.SkipBase
	if img.Ramdisk {
		c.RamdiskElement = img.RamdiskElement
		if c.RamdiskElement == "" {
			c.RamdiskElement = "ramdisk"
		}
	}
	if c.InstallType == "" {
		c.InstallType = img.InstallTypes.Default
	}
	for _, d := range img.ElementsPath {
		if !filepath.IsAbs(d) {
			d = filepath.Join(filepath.Dir(c.File), d)
		}
		c.ElementsPath = append(c.ElementsPath, d)
	}
	return nil
}
