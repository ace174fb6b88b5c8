// Package limits bounds what dib accepts from one YAML or JSON file before
// the YAML library sees it: the file size, the nesting depth, the number of
// values, the keys of one mapping, the length of one scalar and the number
// of tokens. The YAML library (goccy/go-yaml) spends time and memory that
// grow with the square of the nesting depth and of the keys of a mapping,
// and a few hundred bytes per token; Check measures the input in one linear
// pass with memory bounded by the depth limit, so that whatever a file
// holds, dib's time and memory stay bounded and the user is told, at a
// position, which limit the file passes.
//
// The scan is not a YAML parser: it follows the block structure by
// indentation, flow collections by brackets, quoted and block scalars and
// comments, closely enough to count what the parser would build. It never
// rejects a file for being malformed; the parser reports that.
package limits

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"unicode/utf8"

	"github.com/dibuild/dib/spec/diag"
)

// Limits are the bounds Check enforces. A zero field means no bound.
type Limits struct {
	Bytes  int // size of the file
	Depth  int // nesting of collections (mappings and sequences)
	Values int // entries: mapping members, sequence items, flow items
	Keys   int // members of one mapping
	String int // bytes of one scalar (quoted, block or plain)
	Tokens int // scalars, indicators and comments, as the YAML reader tokenizes them
}

// Default returns the limits for every YAML or JSON file dib reads:
// Dibfiles, plan-adjacent inputs and the files of element trees. A real
// Dibfile is a few kilobytes with a nesting depth under 15; the largest
// element files (pkg-map, block-device configurations) hold a few hundred
// values. The YAML reader's cost is quadratic in the keys of one mapping
// (goccy's parseMap copies the members parsed so far for each key): 1000
// keys cost it 30 ms and 10 MB, 5000 keys 650 ms and 180 MB. Within these
// limits a load takes at most about 150 ms and 20 MB (BenchmarkWorstCase).
func Default() Limits {
	return Limits{
		Bytes:  1 << 20,
		Depth:  64,
		Values: 10000,
		Keys:   1000,
		String: 256 << 10,
		Tokens: 50000,
	}
}

// ReadFS reads at most l.Bytes+1 bytes of a file of an element tree (Read):
// a symbolic link to /dev/zero or a fifo cannot make dib read without end.
// Anything but a regular file (after symbolic links) is refused, since
// opening a fifo would wait for a writer.
func (l Limits) ReadFS(fsys fs.FS, name string) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errNotRegular}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return l.Read(f)
}

// Read reads at most l.Bytes+1 bytes of r.
func (l Limits) Read(r io.Reader) ([]byte, error) {
	if l.Bytes > 0 {
		r = io.LimitReader(r, int64(l.Bytes)+1)
	}
	return io.ReadAll(r)
}

var errNotRegular = errors.New("not a regular file")

// Check scans src and returns one error diagnostic, positioned in file,
// for the first limit it passes; nil when src is within every limit.
func (l Limits) Check(file string, src []byte) diag.Diagnostics {
	if l.Bytes > 0 && len(src) > l.Bytes {
		line, col := position(src, l.Bytes)
		return diag.Diagnostics{diag.Errorf("the file is larger than %s", size(l.Bytes)).At(file, line, col).
			WithHint("dib reads YAML and JSON files of at most %s; is this the right file?", size(l.Bytes))}
	}
	s := scanner{src: src, l: l}
	s.scan()
	if s.err == nil {
		return nil
	}
	line, col := position(src, s.errAt)
	return diag.Diagnostics{s.err.At(file, line, col)}
}

// size renders a byte count in the largest binary unit that divides it.
func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// position returns the 1-based line and column (in characters, as the
// YAML reader counts them) of byte offset off in src.
func position(src []byte, off int) (line, col int) {
	if off > len(src) {
		off = len(src)
	}
	line, start := 1, 0
	for i := 0; i < off; i++ {
		if src[i] == '\n' {
			line++
			start = i + 1
		}
	}
	return line, utf8.RuneCount(src[start:off]) + 1
}

// level is one open collection.
type level struct {
	indent int  // block collections: the column of their entries (bytes)
	seq    bool // a sequence, not a mapping
	keys   int  // members so far (mappings)
	at     int  // offset where it starts
}

type scanner struct {
	src []byte
	l   Limits

	blocks []level // open block collections, innermost last
	flows  []level // open flow collections, innermost last

	values, tokens int

	// A block scalar (| or >) whose content lines are indented more
	// than scalarOwner; scalarAt is where its indicator is.
	inBlockScalar bool
	scalarOwner   int
	scalarAt      int
	scalarLen     int

	// A quoted scalar continuing on the next line.
	quote   byte
	quoteAt int

	err   *diag.Diagnostic
	errAt int
}

func (s *scanner) fail(at int, d diag.Diagnostic) {
	if s.err == nil {
		s.err, s.errAt = &d, at
	}
}

func (s *scanner) depth() int { return len(s.blocks) + len(s.flows) }

func (s *scanner) token(at int) {
	s.tokens++
	if s.l.Tokens > 0 && s.tokens > s.l.Tokens {
		s.fail(at, diag.Errorf("the file has more than %d YAML tokens (values, keys, punctuation and comments)", s.l.Tokens).
			WithHint("dib's files need far fewer; is this the right file?"))
	}
}

func (s *scanner) value(at int) {
	s.values++
	if s.l.Values > 0 && s.values > s.l.Values {
		s.fail(at, diag.Errorf("the file has more than %d values", s.l.Values).
			WithHint("dib's files need far fewer; is this the right file?"))
	}
}

func (s *scanner) push(stack *[]level, lv level) {
	if s.l.Depth > 0 && s.depth() >= s.l.Depth {
		s.fail(lv.at, diag.Errorf("the values are nested more than %d levels deep", s.l.Depth).
			WithHint("dib's files need far fewer levels; look for unclosed brackets or runaway indentation"))
		return
	}
	*stack = append(*stack, lv)
}

func (s *scanner) key(top *level, at int) {
	top.keys++
	if s.l.Keys > 0 && top.keys > s.l.Keys {
		s.fail(at, diag.Errorf("a mapping with more than %d keys", s.l.Keys).
			WithHint("the mapping starts at %s; dib's files need far fewer keys", s.where(top.at)))
	}
}

func (s *scanner) where(off int) string {
	line, col := position(s.src, off)
	return fmt.Sprintf("line %d, column %d", line, col)
}

func (s *scanner) long(at, n int) {
	if s.l.String > 0 && n > s.l.String {
		s.fail(at, diag.Errorf("a value longer than %s", size(s.l.String)).
			WithHint("dib reads scalars of at most %s; keep large content in files", size(s.l.String)))
	}
}

// blockEntry records a block sequence entry ("- ") at column c.
func (s *scanner) blockEntry(c, at int) {
	for len(s.blocks) > 0 && s.blocks[len(s.blocks)-1].indent > c {
		s.blocks = s.blocks[:len(s.blocks)-1]
	}
	if n := len(s.blocks); n == 0 || s.blocks[n-1].indent != c || !s.blocks[n-1].seq {
		s.push(&s.blocks, level{indent: c, seq: true, at: at})
	}
	s.value(at)
}

// blockKey records a block mapping key at column c.
func (s *scanner) blockKey(c, at int) {
	for n := len(s.blocks); n > 0; n = len(s.blocks) {
		top := s.blocks[n-1]
		if top.indent > c || (top.indent == c && top.seq) {
			s.blocks = s.blocks[:n-1]
			continue
		}
		break
	}
	n := len(s.blocks)
	if n == 0 || s.blocks[n-1].indent != c {
		s.push(&s.blocks, level{indent: c, at: at})
		n = len(s.blocks)
	}
	if n > 0 {
		s.key(&s.blocks[n-1], at)
	}
	s.value(at)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// spaceOrEnd reports whether offset i of line is whitespace or past it.
func spaceOrEnd(line []byte, i int) bool { return i >= len(line) || isSpace(line[i]) }

func (s *scanner) scan() {
	src := s.src
	for start := 0; start < len(src) && s.err == nil; {
		end := start
		for end < len(src) && src[end] != '\n' {
			end++
		}
		s.line(start, src[start:end])
		start = end + 1
	}
	if s.inBlockScalar {
		s.long(s.scalarAt, s.scalarLen)
	}
}

// line scans one line; off is the offset of its first byte.
func (s *scanner) line(off int, ln []byte) {
	ind := 0
	for ind < len(ln) && ln[ind] == ' ' {
		ind++
	}
	blank := true
	for _, c := range ln[ind:] {
		if !isSpace(c) {
			blank = false
			break
		}
	}
	if s.inBlockScalar {
		if blank || ind > s.scalarOwner {
			s.scalarLen += len(ln) + 1
			s.long(s.scalarAt, s.scalarLen)
			return
		}
		s.inBlockScalar = false
	}
	i := 0
	if s.quote != 0 {
		i = s.continueQuote(off, ln, 0)
		if s.quote != 0 {
			return
		}
	} else {
		if blank {
			return
		}
		i = ind
		if len(s.flows) == 0 {
			i = s.structure(off, ln, ind)
		}
	}
	s.inline(off, ln, i)
}

// structure handles the block indicators at the start of a line outside
// flow collections: document markers, directives, sequence entries,
// explicit and implicit keys. It returns where the rest of the line
// starts.
func (s *scanner) structure(off int, ln []byte, i int) int {
	if i == 0 && len(ln) >= 3 && (string(ln[:3]) == "---" || string(ln[:3]) == "...") && spaceOrEnd(ln, 3) {
		s.blocks = s.blocks[:0]
		s.token(off)
		return 3
	}
	if i == 0 && len(ln) > 0 && ln[0] == '%' {
		s.token(off)
		return len(ln)
	}
	for i < len(ln) && s.err == nil {
		c := ln[i]
		switch {
		case c == '#':
			return i
		case (c == '-' || c == '?') && spaceOrEnd(ln, i+1):
			if c == '-' {
				s.blockEntry(i, off+i)
			} else {
				s.blockKey(i, off+i)
			}
			s.token(off + i)
			i++
			for i < len(ln) && isSpace(ln[i]) {
				i++
			}
			continue
		case isKey(ln, i):
			s.blockKey(i, off+i)
		}
		return i
	}
	return i
}

// isKey reports whether a block mapping key ("key: ", "'k': ", "k:" at
// the end of the line) starts at offset i of ln.
func isKey(ln []byte, i int) bool {
	if i < len(ln) && (ln[i] == '"' || ln[i] == '\'') {
		q := ln[i]
		j := i + 1
		for j < len(ln) {
			if ln[j] == '\\' && q == '"' {
				j += 2
				continue
			}
			if ln[j] == q {
				if q == '\'' && j+1 < len(ln) && ln[j+1] == '\'' {
					j += 2
					continue
				}
				break
			}
			j++
		}
		j++
		for j < len(ln) && isSpace(ln[j]) {
			j++
		}
		return j < len(ln) && ln[j] == ':' && spaceOrEnd(ln, j+1)
	}
	if i < len(ln) && (ln[i] == '[' || ln[i] == '{' || ln[i] == '|' || ln[i] == '>') {
		return false
	}
	for j := i; j < len(ln); j++ {
		switch ln[j] {
		case '#':
			if j > i && isSpace(ln[j-1]) {
				return false
			}
		case ':':
			if spaceOrEnd(ln, j+1) {
				return true
			}
		}
	}
	return false
}

// continueQuote scans a quoted scalar from offset i of ln (the quote is
// open); it returns the offset after the closing quote, or len(ln) when
// the scalar goes on past the line.
func (s *scanner) continueQuote(off int, ln []byte, i int) int {
	for ; i < len(ln); i++ {
		c := ln[i]
		if s.quote == '"' && c == '\\' {
			i++
			continue
		}
		if c == s.quote {
			if c == '\'' && i+1 < len(ln) && ln[i+1] == '\'' {
				i++
				continue
			}
			s.long(s.quoteAt, off+i-s.quoteAt)
			s.quote = 0
			return i + 1
		}
	}
	s.long(s.quoteAt, off+len(ln)-s.quoteAt)
	return len(ln)
}

// inline scans the rest of a line from offset i: scalars, flow
// collections, indicators and comments.
func (s *scanner) inline(off int, ln []byte, i int) {
	afterIndicator := true // a block scalar header may follow
	for i < len(ln) && s.err == nil {
		c := ln[i]
		switch {
		case isSpace(c):
			i++
			continue
		case c == '#' && (i == 0 || isSpace(ln[i-1])):
			s.token(off + i)
			return
		case c == '"' || c == '\'':
			s.token(off + i)
			s.quote, s.quoteAt = c, off+i
			i = s.continueQuote(off, ln, i+1)
			if s.quote != 0 {
				return
			}
			if len(s.flows) > 0 && i < len(ln) && ln[i] == ':' {
				s.flowKey(off + i) // JSON style "key":value
				s.token(off + i)
				i++
			}
			afterIndicator = false
			continue
		case c == '[' || c == '{':
			s.token(off + i)
			s.value(off + i)
			s.push(&s.flows, level{seq: c == '[', at: off + i})
			i++
			afterIndicator = true
			continue
		case c == ']' || c == '}':
			s.token(off + i)
			if len(s.flows) > 0 {
				s.flows = s.flows[:len(s.flows)-1]
			}
			i++
			afterIndicator = false
			continue
		case c == ',' && len(s.flows) > 0:
			s.token(off + i)
			s.value(off + i)
			i++
			afterIndicator = true
			continue
		case c == ':' && (spaceOrEnd(ln, i+1) || (len(s.flows) > 0 && isFlowEnd(ln, i+1))):
			if len(s.flows) > 0 {
				s.flowKey(off + i)
			}
			s.token(off + i)
			i++
			afterIndicator = true
			continue
		case (c == '|' || c == '>') && afterIndicator && len(s.flows) == 0 && isBlockHeader(ln, i+1):
			s.token(off + i)
			s.inBlockScalar = true
			s.scalarOwner = -1
			if n := len(s.blocks); n > 0 {
				s.scalarOwner = s.blocks[n-1].indent
			}
			s.scalarAt, s.scalarLen = off+i, 0
			return
		case (c == '&' || c == '!') && afterIndicator:
			// an anchor or a tag: a token of its own, the value follows
			j := i
			for j < len(ln) && !isSpace(ln[j]) && !(len(s.flows) > 0 && isFlowEnd(ln, j)) {
				j++
			}
			s.token(off + i)
			i = j
			continue
		}
		// A plain scalar: up to ": ", " #", the end of the line or, in a
		// flow collection, a flow indicator.
		j := i
		for j < len(ln) {
			d := ln[j]
			if d == ':' && (spaceOrEnd(ln, j+1) || (len(s.flows) > 0 && isFlowEnd(ln, j+1))) {
				break
			}
			if d == '#' && j > i && isSpace(ln[j-1]) {
				break
			}
			if len(s.flows) > 0 && (d == ',' || d == '[' || d == ']' || d == '{' || d == '}') {
				break
			}
			if isSpace(d) {
				s.token(off + j) // each word may be a token of its own to the reader
			}
			j++
		}
		if j == i {
			j++
		}
		s.token(off + i)
		s.long(off+i, j-i)
		i = j
		afterIndicator = false
	}
}

// isFlowEnd reports whether offset i of ln ends a flow scalar.
func isFlowEnd(ln []byte, i int) bool {
	return i >= len(ln) || isSpace(ln[i]) || ln[i] == ',' || ln[i] == ']' || ln[i] == '}'
}

// isBlockHeader reports whether the rest of a line from offset i is a
// block scalar header's indicators ("-", "+", a digit), optionally
// followed by a comment.
func isBlockHeader(ln []byte, i int) bool {
	for ; i < len(ln); i++ {
		c := ln[i]
		switch {
		case c == '-' || c == '+' || (c >= '1' && c <= '9'):
		case isSpace(c):
			for i < len(ln) && isSpace(ln[i]) {
				i++
			}
			return i == len(ln) || ln[i] == '#'
		default:
			return false
		}
	}
	return true
}

// flowKey counts a member of the innermost flow mapping.
func (s *scanner) flowKey(at int) {
	if n := len(s.flows); n > 0 && !s.flows[n-1].seq {
		s.key(&s.flows[n-1], at)
	}
}
