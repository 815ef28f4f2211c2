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
}

type node struct {
	hi, lo   uint64 // the prefix, masked
	mhi, mlo uint64 // its mask
	bits     uint8
	verd     verdict
	kids     [2]int32 // node indices; 0: none (the root is no one's child)
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
	t.nodes = append(t.nodes, node{hi: hi & mhi, lo: lo & mlo, mhi: mhi, mlo: mlo, bits: n, verd: v})
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

// lookup returns the verdict of the longest prefix covering the address (hi, lo).
func (t *trie) lookup(hi, lo uint64) verdict {
	nodes := t.nodes
	n := &nodes[0]
	best := n.verd
	for n.bits < t.max {
		c := n.kids[bitAt(hi, lo, n.bits)]
		if c == 0 {
			break
		}
		n = &nodes[c]
		if hi&n.mhi != n.hi || lo&n.mlo != n.lo {
			break
		}
		if n.verd != none {
			best = n.verd
		}
	}
	return best
}
