package ipfilter

import "net/netip"

// verdict is what a prefix says about the addresses it covers.
type verdict uint8

const (
	none verdict = iota
	allow
	deny
)

// trie is a binary trie on address bits: node i's children are kids[i][0] and kids[i][1] (0: none,
// as the root is never a child), and its verdict the one of the prefix ending there. A lookup
// walks at most 32 (IPv4) or 128 (IPv6) nodes whatever the number of prefixes, and remembers the
// verdict of the longest prefix it passed.
type trie struct {
	kids []([2]uint32)
	verd []verdict
}

func newTrie() *trie { return &trie{kids: make([][2]uint32, 1), verd: make([]verdict, 1)} }

// insert adds a masked prefix (IPv4 ones to the IPv4 trie, bits counted from the address's
// last four bytes); it returns the verdict the same prefix already had (none if new).
func (t *trie) insert(p netip.Prefix, v verdict) verdict {
	a := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	n := uint32(0)
	for i := 0; i < p.Bits(); i++ {
		bit := a[off+i/8] >> (7 - i%8) & 1
		if t.kids[n][bit] == 0 {
			t.kids = append(t.kids, [2]uint32{})
			t.verd = append(t.verd, none)
			t.kids[n][bit] = uint32(len(t.kids) - 1)
		}
		n = t.kids[n][bit]
	}
	old := t.verd[n]
	t.verd[n] = v
	return old
}

// lookup returns the verdict of the longest prefix covering the first bits of a (32 for IPv4,
// 128 for IPv6, whose bytes a holds as As16 does: IPv4 in the last four).
func (t *trie) lookup(a *[16]byte, off, bits int) verdict {
	kids, verd := t.kids, t.verd
	best := verd[0]
	n := uint32(0)
	for i := 0; i < bits; i++ {
		bit := a[off+i>>3] >> (7 - i&7) & 1
		n = kids[n][bit]
		if n == 0 {
			break
		}
		if v := verd[n]; v != none {
			best = v
		}
	}
	return best
}
