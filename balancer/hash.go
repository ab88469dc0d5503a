package balancer

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Hash ring limits: points per unit of weight by default and at most, and
// points in all.
const (
	defaultVirtualNodes = 100
	maxVirtualNodes     = 10000
	maxRingPoints       = 1 << 18
)

// hashKeyKind is where the hash policy takes its key from.
type hashKeyKind uint8

const (
	keyIP hashKeyKind = iota
	keyPath
	keyHeader
	keyCookie
)

// hashPolicy is consistent hashing with bounded loads (Mirrokni, Thorup and
// Zadimoghaddam, 2018). Each member owns points on a 64-bit ring, in number
// proportional to its weight, placed by hashing its ID: adding or removing
// a member moves only the keys on its own arcs, about 1/N of them. A key's
// hash is looked up on the ring and walks clockwise past members that are
// full: a member takes a request only while its in-flight count is below
// (1+epsilon) x (all in-flight + 1) x its share of the total weight. One
// hot key therefore spills to the next members on the ring instead of
// overloading its own, while keys stay where they were whenever loads are
// even. The hash is fixed (not seeded per process), so balancers that share
// a pool map keys alike.
type hashPolicy struct {
	kind    hashKeyKind
	name    string  // header name (lower case) or cookie name
	eps     float64 // HashBalance
	vnodes  int     // points per unit of weight
	rings   poolCache[hashRing]
	buildFn func([]*Backend) hashRing
}

// hashRing is one pool's ring.
type hashRing struct {
	points []uint64 // sorted
	owner  []int32  // owner[k] is the pool index owning points[k]
	// first[x] is the index of the first point whose top bits are x or
	// more (len(points) if none): a lookup reads it and steps over about
	// one point, instead of a binary search of the ring.
	first []uint32
	shift uint // 64 - bits of first's index
	// share[i] is (1+eps) x weight(i) / total weight: member i is full
	// when inflight(i) >= share[i] x (total in-flight + 1).
	share []float64
}

func newHash(cfg PolicyConfig) (*hashPolicy, error) {
	s := &hashPolicy{eps: cfg.HashBalance, vnodes: cfg.VirtualNodes}
	if s.eps == 0 {
		s.eps = 0.25
	}
	if math.IsNaN(s.eps) || s.eps < 0 {
		return nil, fmt.Errorf("policy hash: balance %g: want 0 or more", cfg.HashBalance)
	}
	if s.vnodes == 0 {
		s.vnodes = defaultVirtualNodes
	}
	if s.vnodes < 1 || s.vnodes > maxVirtualNodes {
		return nil, fmt.Errorf("policy hash: virtual nodes %d: want 1 to %d", cfg.VirtualNodes, maxVirtualNodes)
	}
	if err := s.parseKey(cfg.HashKey); err != nil {
		return nil, err
	}
	s.buildFn = s.build
	return s, nil
}

func (s *hashPolicy) parseKey(key string) error {
	kind, name, _ := strings.Cut(key, ":")
	switch {
	case key == "" || key == "ip":
		s.kind = keyIP
	case key == "path":
		s.kind = keyPath
	case kind == "header" && isHashKeyName(name):
		s.kind, s.name = keyHeader, strings.ToLower(name)
	case kind == "cookie" && isHashKeyName(name):
		s.kind, s.name = keyCookie, name
	default:
		return fmt.Errorf("policy hash: key %q: want ip, path, header:NAME or cookie:NAME with NAME a token", key)
	}
	return nil
}

// Select implements Selector.
func (s *hashPolicy) Select(pool []*Backend, r *Request) (*Backend, bool) {
	switch len(pool) {
	case 0:
		return nil, false
	case 1:
		return pool[0], true
	}
	ring := s.rings.get(pool, s.buildFn)
	h := s.key(r)
	k := ring.lookup(h)
	owner := pool[ring.owner[k]]
	if owner.InFlight() == 0 {
		return owner, true // an idle member is never full
	}
	total := int64(1)
	for _, b := range pool {
		total += b.InFlight()
	}
	return ring.walk(pool, k, float64(total)), true
}

// walk returns the first member clockwise from point k that is not full
// given total (all in-flight + 1). Counts move while it reads them, so if
// every member looks full it gives up after one turn and returns the key's
// own member.
func (ring *hashRing) walk(pool []*Backend, k int, total float64) *Backend {
	prev := int32(-1)
	for range len(ring.points) {
		if o := ring.owner[k]; o != prev {
			if float64(pool[o].InFlight()) < ring.share[o]*total {
				return pool[o]
			}
			prev = o
		}
		if k++; k == len(ring.points) {
			k = 0
		}
	}
	return pool[ring.owner[k]]
}

// key hashes the request's key, falling back to the client address when
// the header or cookie is missing or empty.
func (s *hashPolicy) key(r *Request) uint64 {
	if r == nil {
		return hash64(nil)
	}
	var v []byte
	switch s.kind {
	case keyPath:
		return hash64(r.Path())
	case keyHeader:
		v = r.Header(s.name)
	case keyCookie:
		v = r.Cookie(s.name)
	}
	if len(v) > 0 {
		return hash64(v)
	}
	a := r.ClientIP.Unmap().As16()
	return hash64(a[:])
}

// build places weight x vnodes points per member (scaled down to fit
// maxRingPoints), each the hash of the member's ID and the point's number,
// so a member's points do not depend on the rest of the pool.
func (s *hashPolicy) build(pool []*Backend) hashRing {
	sum := int64(0)
	for _, b := range pool {
		sum += weightOf(b)
	}
	per := float64(s.vnodes)
	if float64(sum)*per > maxRingPoints {
		per = maxRingPoints / float64(sum)
	}
	type point struct {
		h  uint64
		id string
		o  int32
	}
	pts := make([]point, 0, int(float64(sum)*per)+len(pool))
	share := make([]float64, len(pool))
	for i, b := range pool {
		share[i] = (1 + s.eps) * float64(weightOf(b)) / float64(sum)
		n := max(1, int(float64(weightOf(b))*per))
		// Point v of member ID hashes "ID\x00" and v, big-endian.
		buf := append([]byte(b.ID), 0, 0, 0, 0, 0)
		for v := range n {
			binary.BigEndian.PutUint32(buf[len(buf)-4:], uint32(v))
			pts = append(pts, point{hash64(buf), b.ID, int32(i)})
		}
	}
	// Ties (two 64-bit hashes equal) are broken by ID so that the ring does
	// not depend on the pool's order.
	slices.SortFunc(pts, func(a, b point) int {
		if a.h != b.h {
			if a.h < b.h {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	ring := hashRing{points: make([]uint64, len(pts)), owner: make([]int32, len(pts)), share: share}
	for k, p := range pts {
		ring.points[k], ring.owner[k] = p.h, p.o
	}
	ring.index()
	return ring
}

// index builds first, with about one point per entry.
func (ring *hashRing) index() {
	nbits := uint(bits.Len(uint(len(ring.points))))
	ring.shift = 64 - nbits
	ring.first = make([]uint32, 1<<nbits)
	k := 0
	for x := range ring.first {
		for k < len(ring.points) && ring.points[k]>>ring.shift < uint64(x) {
			k++
		}
		ring.first[x] = uint32(k)
	}
}

// lookup returns the index of the first point at or after h, clockwise.
func (ring *hashRing) lookup(h uint64) int {
	k := int(ring.first[h>>ring.shift])
	for k < len(ring.points) && ring.points[k] < h {
		k++
	}
	if k == len(ring.points) {
		k = 0
	}
	return k
}

// isHashKeyName reports whether name is an RFC 9110 token, as header and
// cookie names must be.
func isHashKeyName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// hash64 is the 64-bit hash of the hash policy's keys and ring points:
// eight bytes at a time, each word folded in by xor, an odd multiply (a
// bijection, so inputs that differ in one word never collide) and a
// rotation, then the murmur3 finalizer so that every input bit reaches
// every output bit. It is fixed, unlike hash/maphash's per-process seed,
// so balancers that share a pool map keys alike; it does not allocate.
// Keys come from clients, but a client choosing keys that collide gains
// nothing the bounded load does not already take away.
func hash64(b []byte) uint64 {
	h := uint64(len(b))*hashK0 ^ hashSeed
	for len(b) >= 8 {
		h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(b))*hashK1, 31)
		b = b[8:]
	}
	if len(b) > 0 {
		var w uint64
		for i, c := range b {
			w |= uint64(c) << (8 * i)
		}
		h = bits.RotateLeft64((h^w)*hashK1, 31)
	}
	return mix64(h)
}

// Constants of hash64: odd, with well-spread bits.
const (
	hashSeed = 0x243f6a8885a308d3 // pi's fraction
	hashK0   = 0x9e3779b97f4a7c15 // 2^64 / golden ratio
	hashK1   = 0xbf58476d1ce4e5b9
)

// mix64 is the 64-bit finalizer of murmur3.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
