package ipfilter

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// verdict is what a prefix says about the addresses it covers.
type verdict uint8

const (
	none verdict = iota
	allow
	deny
)

// trie is a path-compressed binary trie (a radix tree on address bits) of one address family.
// Each node holds a prefix; its children's prefixes extend it, the next bit choosing the child.
// Nodes exist only for configured prefixes and for the points where two of them part, so a
// lookup visits at most one node per configured prefix on the address's path, never more than
// 33 (IPv4) or 129 (IPv6), and usually a handful, whatever the number of prefixes.
//
// Addresses are two big-endian 64-bit halves (IPv4 in the top 32 bits of hi), so a node's
// prefix is checked with two masked comparisons.
type trie struct {
	nodes []node
	max   uint8 // 32 or 128
	// top is where a lookup stands after the address's first 8 bits, one entry per value of
	// them (finish fills it): the nodes of prefixes of up to 8 bits are the first ones every
	// lookup visits, and this replaces them with one read.
	top [256]topEntry
}

// node is 24 bytes: its mask is derived from bits, so that two nodes and more share a cache
// line (a lookup visits several, each a likely cache miss in a busy gateway).
type node struct {
	hi, lo uint64 // the prefix, masked
	bits   uint8
	verd   verdict
	kids   [2]int32 // node indices; 0: none (the root is no one's child)
}

// topEntry is the longest-prefix verdict so far and the deepest node, of at most 8 bits, whose
// prefix covers the address, for one value of its first 8 bits.
type topEntry struct {
	node int32
	verd verdict
	// final: no node below can cover an address with these first 8 bits, so verd is the answer
	// and the lookup reads neither the nodes nor the rest of the trie (an allowed /8 apart from
	// the deny lists, a /8 no prefix reaches).
	final bool
}

func newTrie(maxBits uint8) *trie { return &trie{nodes: make([]node, 1), max: maxBits} }

// halves returns a's bits as two big-endian words (IPv4 in the top 32 bits of hi).
func halves(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func mask(n uint8) (hi, lo uint64) {
	switch {
	case n == 0:
		return 0, 0
	case n <= 64:
		return ^uint64(0) << (64 - n), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - n)
}

func bitAt(hi, lo uint64, i uint8) int {
	if i < 64 {
		return int(hi >> (63 - i) & 1)
	}
	return int(lo >> (127 - i) & 1)
}

// commonLen is the number of leading bits a and b share, at most limit.
func commonLen(ahi, alo, bhi, blo uint64, limit uint8) uint8 {
	var n uint8
	if x := ahi ^ bhi; x != 0 {
		n = uint8(bits.LeadingZeros64(x))
	} else {
		n = 64 + uint8(bits.LeadingZeros64(alo^blo))
	}
	return min(n, limit)
}

func (t *trie) newNode(hi, lo uint64, n uint8, v verdict) int32 {
	mhi, mlo := mask(n)
	t.nodes = append(t.nodes, node{hi: hi & mhi, lo: lo & mlo, bits: n, verd: v})
	return int32(len(t.nodes) - 1)
}

// insert adds a masked prefix of this trie's family with its verdict.
func (t *trie) insert(p netip.Prefix, v verdict) {
	hi, lo := halves(p.Addr())
	plen := uint8(p.Bits())
	n := int32(0)
	for {
		nd := &t.nodes[n]
		if nd.bits == plen {
			nd.verd = v
			return
		}
		b := bitAt(hi, lo, nd.bits)
		c := nd.kids[b]
		if c == 0 {
			leaf := t.newNode(hi, lo, plen, v)
			t.nodes[n].kids[b] = leaf
			return
		}
		cn := t.nodes[c]
		cp := commonLen(hi, lo, cn.hi, cn.lo, min(cn.bits, plen))
		if cp == cn.bits {
			n = c // c's prefix is a prefix of p: go down
			continue
		}
		// p and c part (or p ends) at bit cp: a node for their common prefix takes c's place.
		m := t.newNode(hi, lo, cp, none)
		t.nodes[m].kids[bitAt(cn.hi, cn.lo, cp)] = c
		if cp == plen {
			t.nodes[m].verd = v
		} else {
			leaf := t.newNode(hi, lo, plen, v)
			t.nodes[m].kids[bitAt(hi, lo, cp)] = leaf
		}
		t.nodes[n].kids[b] = m
		return
	}
}

// finish prepares the trie for lookups once every prefix is in: it numbers the nodes breadth
// first, so that the upper levels, which every lookup visits, sit together in a few cache lines,
// and fills top. insert must not be called after it.
func (t *trie) finish() {
	order := make([]int32, 0, len(t.nodes))
	order = append(order, 0)
	for i := 0; i < len(order); i++ {
		for _, k := range t.nodes[order[i]].kids {
			if k != 0 {
				order = append(order, k)
			}
		}
	}
	newIdx := make([]int32, len(t.nodes))
	for i, old := range order {
		newIdx[old] = int32(i)
	}
	nodes := make([]node, len(order))
	for i, old := range order {
		nd := t.nodes[old]
		for b, k := range nd.kids {
			if k != 0 {
				nd.kids[b] = newIdx[k]
			}
		}
		nodes[i] = nd
	}
	t.nodes = nodes
	for b := range t.top {
		hi := uint64(b) << 56
		n, best := int32(0), t.nodes[0].verd
		for {
			nd := &t.nodes[n]
			if nd.bits >= 8 || nd.bits >= t.max {
				break
			}
			c := nd.kids[bitAt(hi, 0, nd.bits)]
			if c == 0 {
				break
			}
			cn := &t.nodes[c]
			// Only a child whose prefix the first 8 bits decide: a longer one is the lookup's
			// to check, from n.
			if cn.bits > 8 || commonLen(hi, 0, cn.hi, cn.lo, cn.bits) < cn.bits {
				break
			}
			n = c
			if cn.verd != none {
				best = cn.verd
			}
		}
		t.top[b] = topEntry{node: n, verd: best, final: t.endsAt(n, hi)}
	}
}

// endsAt reports whether a lookup of an address whose first 8 bits are hi's, standing at node
// n (of at most 8 bits) after them, can go no further whatever its other bits.
func (t *trie) endsAt(n int32, hi uint64) bool {
	nd := &t.nodes[n]
	if nd.bits >= t.max {
		return true
	}
	if nd.bits >= 8 {
		// The next bit is past the first 8: either child may be taken.
		return nd.kids[0] == 0 && nd.kids[1] == 0
	}
	c := nd.kids[bitAt(hi, 0, nd.bits)]
	if c == 0 {
		return true
	}
	// The child's prefix must agree with the first 8 bits for the lookup to go on (a child of
	// up to 8 bits that agreed would have been taken already).
	cn := &t.nodes[c]
	k := min(cn.bits, 8)
	return commonLen(hi, 0, cn.hi, cn.lo, k) < k
}

// lookup returns the verdict of the longest prefix covering the address (hi, lo).
func (t *trie) lookup(hi, lo uint64) verdict {
	e := t.top[hi>>56]
	if e.final {
		return e.verd
	}
	nodes := t.nodes
	n := &nodes[e.node]
	best := e.verd
	for n.bits < t.max {
		c := n.kids[bitAt(hi, lo, n.bits)]
		if c == 0 {
			break
		}
		n = &nodes[c]
		// The address is under n's prefix when they share its first n.bits bits.
		if x := hi ^ n.hi; x != 0 {
			if uint8(bits.LeadingZeros64(x)) < n.bits {
				break
			}
		} else if n.bits > 64 && uint8(64+bits.LeadingZeros64(lo^n.lo)) < n.bits {
			break
		}
		if n.verd != none {
			best = n.verd
		}
	}
	return best
}
