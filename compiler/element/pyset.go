package element

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// This file reproduces the iteration order of CPython 3.11 sets of str
// with PYTHONHASHSEED=0 (SipHash-1-3 with a zero key), the order DIB's
// element_dependencies.py sees in the runs recorded by the oracle, and the
// order of bash 5 associative arrays (FNV-1 into 1024 buckets). With them
// dib follows DIB's own queue and hook-copy orders instead of inventing
// its own; TestOracleHashOrders checks them against the oracle's
// image_element_order and hook_copy_order.

// pyHash is hash(str) in CPython 3.11 with PYTHONHASHSEED=0.
func pyHash(s string) int64 {
	if s == "" {
		return 0
	}
	// CPython hashes its internal representation: one byte per character
	// when all fit in Latin-1, else two (UCS-2) or four (UCS-4), little endian.
	var data []byte
	maxr := rune(0)
	for _, r := range s {
		maxr = max(maxr, r)
	}
	switch {
	case maxr < 0x80:
		data = []byte(s)
	default:
		width := 1
		if maxr > 0xff {
			width = 2
		}
		if maxr > 0xffff {
			width = 4
		}
		for len(s) > 0 {
			r, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			switch width {
			case 1:
				data = append(data, byte(r))
			case 2:
				data = binary.LittleEndian.AppendUint16(data, uint16(r))
			default:
				data = binary.LittleEndian.AppendUint32(data, uint32(r))
			}
		}
	}
	h := int64(siphash13(0, 0, data))
	if h == -1 {
		h = -2
	}
	return h
}

func siphash13(k0, k1 uint64, in []byte) uint64 {
	b := uint64(len(in)) << 56
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v2 += v3
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v1
		v0 += v3
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 = bits.RotateLeft64(v2, 32)
	}
	for len(in) >= 8 {
		m := binary.LittleEndian.Uint64(in)
		in = in[8:]
		v3 ^= m
		round()
		v0 ^= m
	}
	var t uint64
	for i := len(in) - 1; i >= 0; i-- {
		t = t<<8 | uint64(in[i])
	}
	b |= t
	v3 ^= b
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	return (v0 ^ v1) ^ (v2 ^ v3)
}

const (
	pyMinSize      = 8
	pyLinearProbes = 9
	pyPerturbShift = 5
)

type pyEntry struct {
	key   string
	hash  int64
	state uint8 // 0 unused, 1 active, 2 dummy
}

// pySet is a CPython 3.11 set of str, as far as insertion order, resizing
// and iteration go.
type pySet struct {
	table      []pyEntry
	fill, used int
	index      map[string]bool
}

func newPySet() *pySet {
	return &pySet{table: make([]pyEntry, pyMinSize), index: map[string]bool{}}
}

// pySetOf is set(list): keys added one by one.
func pySetOf(list []string) *pySet {
	s := newPySet()
	for _, k := range list {
		s.add(k)
	}
	return s
}

func (s *pySet) mask() uint64           { return uint64(len(s.table) - 1) }
func (s *pySet) len() int               { return s.used }
func (s *pySet) contains(k string) bool { return s.index[k] }

// add is set_add_entry.
func (s *pySet) add(k string) {
	if s.index[k] {
		return
	}
	s.addNew(k, pyHash(k))
}

func (s *pySet) addNew(k string, h int64) {
	i := s.probe(h, func(e *pyEntry) bool { return e.state == 0 })
	s.table[i] = pyEntry{key: k, hash: h, state: 1}
	s.index[k] = true
	s.fill++
	s.used++
	if uint64(s.fill)*5 >= s.mask()*3 {
		s.resize(s.growTo())
	}
}

// probe walks the slots set_add_entry and set_lookkey inspect for hash h,
// in their order (a run of pyLinearProbes neighbours, then the perturbed
// jump), and returns the first slot for which stop is true.
func (s *pySet) probe(h int64, stop func(*pyEntry) bool) int {
	mask := s.mask()
	i := uint64(h) & mask
	perturb := uint64(h)
	for {
		probes := 0
		if i+pyLinearProbes <= mask {
			probes = pyLinearProbes
		}
		for j := uint64(0); j <= uint64(probes); j++ {
			if stop(&s.table[i+j]) {
				return int(i + j)
			}
		}
		perturb >>= pyPerturbShift
		i = (i*5 + 1 + perturb) & mask
	}
}

func (s *pySet) growTo() int {
	if s.used > 50000 {
		return s.used * 2
	}
	return s.used * 4
}

// insertClean is set_insert_clean: no dummies, key known absent.
func insertClean(table []pyEntry, k string, h int64) {
	mask := uint64(len(table) - 1)
	i := uint64(h) & mask
	perturb := uint64(h)
	for {
		if table[i].state == 0 {
			table[i] = pyEntry{key: k, hash: h, state: 1}
			return
		}
		if i+pyLinearProbes <= mask {
			for j := uint64(1); j <= pyLinearProbes; j++ {
				if table[i+j].state == 0 {
					table[i+j] = pyEntry{key: k, hash: h, state: 1}
					return
				}
			}
		}
		perturb >>= pyPerturbShift
		i = (i*5 + 1 + perturb) & mask
	}
}

// resize is set_table_resize: the smallest power of two above minused,
// active entries reinserted in old table order.
func (s *pySet) resize(minused int) {
	size := pyMinSize
	for size <= minused {
		size <<= 1
	}
	old := s.table
	s.table = make([]pyEntry, size)
	for _, e := range old {
		if e.state == 1 {
			insertClean(s.table, e.key, e.hash)
		}
	}
	s.fill = s.used
}

// lookup returns the slot holding k (probing as set_add_entry does), or -1.
func (s *pySet) lookup(k string, h int64) int {
	i := s.probe(h, func(e *pyEntry) bool { return e.state == 0 || e.state == 1 && e.hash == h && e.key == k })
	if s.table[i].state == 0 {
		return -1
	}
	return i
}

// discard is set_discard_entry: the slot becomes a dummy.
func (s *pySet) discard(k string, h int64) {
	if !s.index[k] {
		return
	}
	if i := s.lookup(k, h); i >= 0 {
		s.table[i] = pyEntry{hash: -1, state: 2}
		delete(s.index, k)
		s.used--
	}
}

// keys lists the active keys in table (iteration) order.
func (s *pySet) keys() []string {
	out := make([]string, 0, s.used)
	for _, e := range s.table {
		if e.state == 1 {
			out = append(out, e.key)
		}
	}
	return out
}

// update is set_update_internal with a set argument (set_merge).
func (s *pySet) update(o *pySet) {
	if o == s || o.used == 0 {
		return
	}
	if uint64(s.fill+o.used)*5 >= s.mask()*3 {
		s.resize((s.used + o.used) * 2)
	}
	if s.fill == 0 && len(s.table) == len(o.table) && o.fill == o.used {
		copy(s.table, o.table)
		for k := range o.index {
			s.index[k] = true
		}
		s.fill, s.used = o.fill, o.used
		return
	}
	if s.fill == 0 {
		for _, e := range o.table {
			if e.state == 1 {
				insertClean(s.table, e.key, e.hash)
				s.index[e.key] = true
			}
		}
		s.fill, s.used = o.used, o.used
		return
	}
	for _, e := range o.table {
		if e.state == 1 && !s.index[e.key] {
			s.addNew(e.key, e.hash)
		}
	}
}

// copySet is set(s).
func (s *pySet) copySet() *pySet {
	c := newPySet()
	c.update(s)
	return c
}

// difference is s - other, where other is given by its size and a
// membership test (set_difference). Which of CPython's two algorithms runs
// depends on the sizes, and each gives its own order.
func (s *pySet) difference(otherLen int, in func(string) bool) *pySet {
	if s.used>>2 > otherLen {
		// set_copy_and_difference: copy, then discard the common keys.
		c := s.copySet()
		for _, e := range s.table {
			if e.state == 1 && in(e.key) {
				c.discard(e.key, e.hash)
			}
		}
		// set_difference_update_internal resizes when more than a
		// quarter of the slots are dummies.
		if uint64(c.fill-c.used) > c.mask()/4 {
			c.resize(c.growTo())
		}
		return c
	}
	r := newPySet()
	for _, e := range s.table {
		if e.state == 1 && !in(e.key) {
			r.addNew(e.key, e.hash)
		}
	}
	return r
}

// intersection is s & o (set_intersection): the smaller set is iterated.
func (s *pySet) intersection(o *pySet) *pySet {
	a, b := s, o
	if b.used > a.used {
		a, b = b, a
	}
	r := newPySet()
	for _, e := range b.table {
		if e.state == 1 && a.index[e.key] {
			r.addNew(e.key, e.hash)
		}
	}
	return r
}

// bashAssocOrder is the order of "${!a[@]}" for a bash 5 associative array
// filled with keys in this order: FNV-1 hash into 1024 buckets, buckets in
// index order, the newest key first within a bucket.
func bashAssocOrder(keys []string) []string {
	const buckets = 1024
	heads := make([][]string, buckets)
	for _, k := range keys {
		h := uint32(2166136261)
		for i := 0; i < len(k); i++ {
			h *= 16777619
			h ^= uint32(int32(int8(k[i]))) // bash hashes signed chars
		}
		b := h & (buckets - 1)
		heads[b] = append(heads[b], k)
	}
	out := make([]string, 0, len(keys))
	for _, chain := range heads {
		for i := len(chain) - 1; i >= 0; i-- {
			out = append(out, chain[i])
		}
	}
	return out
}
