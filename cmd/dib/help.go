package main

import (
	"embed"
	"fmt"
	"sort"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/dibuild/dib/spec/diag"
)

//go:embed help/*.txt
var helpTopics embed.FS

// HelpCmd prints a help topic. `dib help` and `dib help COMMAND` are
// rewritten to --help before parsing (see helpArgs).
type HelpCmd struct {
	Topic string `arg:"" optional:"" help:"A topic: elements, phases, block-device, secrets, caching, exit-codes."`
}

// Help is shown by `dib help --help`.
func (HelpCmd) Help() string {
	return `Topics: ` + strings.Join(topicNames(), ", ") + `.

Examples:
  dib help                  the commands
  dib help plan             the help of a command (as dib plan --help)
  dib help phases`
}

// Run prints the topic.
func (c HelpCmd) Run(g *Globals) error {
	text, err := helpTopics.ReadFile("help/" + c.Topic + ".txt")
	if err != nil {
		return unknownTopic(g, c.Topic)
	}
	_, err = g.Stdout.Write(text)
	return err
}

// topicNames lists the help topics.
func topicNames() []string {
	entries, _ := helpTopics.ReadDir("help")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".txt"))
	}
	sort.Strings(names)
	return names
}

// unknownTopic reports a topic that does not exist, with the nearest one.
func unknownTopic(g *Globals, topic string) error {
	known := topicNames()
	d := diag.Errorf("no help topic or command %q", topic).
		WithHint("topics: %s; or a command: dib help COMMAND", strings.Join(topicNames(), ", "))
	if c := diag.Closest(topic, known); c != "" {
		d.Hint = fmt.Sprintf("did you mean %q? (topics: %s; or a command: dib help COMMAND)", c, strings.Join(topicNames(), ", "))
	}
	_ = diag.Diagnostics{d}.WriteText(g.Stderr)
	return exitError{code: exitUsage}
}

// helpArgs rewrites `dib help` to `dib --help` and `dib help COMMAND …`
// to `dib COMMAND … --help`; topics stay with the help command.
func helpArgs(model *kong.Application, args []string) []string {
	if len(args) == 0 || args[0] != "help" {
		return args
	}
	if len(args) == 1 {
		return []string{"--help"}
	}
	for _, t := range topicNames() {
		if args[1] == t {
			return args
		}
	}
	for _, n := range model.Children {
		if n.Name == args[1] && n.Name != "help" {
			return append(append([]string{}, args[1:]...), "--help")
		}
	}
	return args
}
