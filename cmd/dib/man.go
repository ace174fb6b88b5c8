package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alecthomas/kong"

	"github.com/dibuild/dib/internal/manpage"
)

// ManCmd writes man pages generated from the command-line model.
type ManCmd struct {
	Dir string `placeholder:"DIR" help:"Write dib.1 and one dib-COMMAND.1 per command into DIR (default: print dib.1)."`
}

// Help is shown by `dib man --help`.
func (ManCmd) Help() string {
	return `The pages say what --help says, in man(7) format. SOURCE_DATE_EPOCH sets
their date, for reproducible packages.

Examples:
  dib man | man -l -
  dib man --dir /usr/local/share/man/man1`
}

// Run renders the pages.
func (c ManCmd) Run(g *Globals, ctx *kong.Context) error {
	date := ""
	if s, ok := g.lookupEnv("SOURCE_DATE_EPOCH"); ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			date = time.Unix(n, 0).UTC().Format("2006-01-02")
		}
	}
	pages := manpage.Pages(ctx.Model, "dib", version, date)
	if c.Dir == "" {
		_, err := fmt.Fprint(g.Stdout, pages[0].Text)
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	for _, p := range pages {
		if err := os.WriteFile(filepath.Join(c.Dir, p.Name), []byte(p.Text), 0o644); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(g.Stderr, "wrote %d man pages to %s\n", len(pages), c.Dir)
	return err
}
