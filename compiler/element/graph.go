package element

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/dominikbraun/graph"
)

// Vertex attributes of Graph.
const (
	AttrKind     = "kind"     // "element" or "provided"
	AttrInput    = "input"    // "true" for the elements of Result.Input
	KindElement  = "element"  // an expanded element
	KindProvided = "provided" // a name provided by an element
)

// Graph returns the dependency graph of a resolved build: one vertex per
// expanded element and per provided name; an edge from each element to
// every name in its element-deps, and from each provided name to the
// element providing it. DIB accepts cycles, so the graph may have some.
func (r *Result) Graph() graph.Graph[string, string] {
	g := graph.New(graph.StringHash, graph.Directed())
	input := make(map[string]bool, len(r.Input))
	for _, e := range r.Input {
		input[e] = true
	}
	for _, e := range r.Elements {
		_ = g.AddVertex(e.Name, graph.VertexAttribute(AttrKind, KindElement), graph.VertexAttribute(AttrInput, strconv.FormatBool(input[e.Name])))
	}
	for _, p := range r.Provided {
		_ = g.AddVertex(p, graph.VertexAttribute(AttrKind, KindProvided), graph.VertexAttribute(AttrInput, strconv.FormatBool(input[p])))
	}
	for _, e := range r.Elements {
		for _, d := range e.Deps {
			_ = g.AddEdge(e.Name, d) // both ends exist after a successful expansion
		}
	}
	for _, p := range r.Provided {
		for _, by := range r.ProvidedBy[p] {
			_ = g.AddEdge(p, by)
		}
	}
	return g
}

// WriteDOT draws Graph in Graphviz DOT, vertices and edges sorted, so the
// same build always gives the same bytes. Requested elements are bold,
// provided names dashed ellipses.
func (r *Result) WriteDOT(w io.Writer) error {
	g := r.Graph()
	adj, err := g.AdjacencyMap()
	if err != nil {
		return err
	}
	verts := slices.Sorted(maps.Keys(adj))
	b := bufio.NewWriter(w)
	fmt.Fprintln(b, "digraph elements {")
	fmt.Fprintln(b, "  rankdir=LR;")
	fmt.Fprintln(b, "  node [shape=box, fontname=\"sans-serif\"];")
	for _, v := range verts {
		_, props, err := g.VertexWithProperties(v)
		if err != nil {
			return err
		}
		var attrs []string
		if props.Attributes[AttrKind] == KindProvided {
			attrs = append(attrs, "shape=ellipse", "style=dashed")
		} else if props.Attributes[AttrInput] == "true" {
			attrs = append(attrs, "style=bold")
		}
		fmt.Fprintf(b, "  %s%s;\n", strconv.Quote(v), dotAttrs(attrs))
	}
	for _, v := range verts {
		targets := make([]string, 0, len(adj[v]))
		for t := range adj[v] {
			targets = append(targets, t)
		}
		sort.Strings(targets)
		_, props, _ := g.VertexWithProperties(v)
		for _, t := range targets {
			var attrs []string
			if props.Attributes[AttrKind] == KindProvided {
				attrs = append(attrs, "style=dashed", `label="provided by"`)
			}
			fmt.Fprintf(b, "  %s -> %s%s;\n", strconv.Quote(v), strconv.Quote(t), dotAttrs(attrs))
		}
	}
	fmt.Fprintln(b, "}")
	return b.Flush()
}

func dotAttrs(a []string) string {
	if len(a) == 0 {
		return ""
	}
	s := " ["
	for i, x := range a {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s + "]"
}
