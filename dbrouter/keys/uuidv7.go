package keys

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// UUID is a 128-bit universally unique identifier (RFC 9562).
type UUID [16]byte

// UUIDv7 makes version 7 UUIDs (RFC 9562 section 5.7): 48 bits of Unix
// milliseconds, then 74 random bits, of which the first 12 (rand_a) are used
// as a counter within the millisecond (section 6.2, method 1 with the
// counter seeded at zero and re-randomized bits after it), so UUIDs from one
// generator strictly increase, also when the clock steps back (it keeps
// counting on the newest millisecond issued, as Snowflake does). They sort
// by time as bytes and as their text form, which keeps B-tree inserts
// local. The zero value is not usable; call NewUUIDv7. It is safe for
// concurrent use.
type UUIDv7 struct {
	now func() time.Time

	// mu guards last and seq.
	mu   sync.Mutex
	last int64
	seq  uint16
}

// NewUUIDv7 returns a generator using the clock now; if now is nil,
// time.Now is used.
func NewUUIDv7(now func() time.Time) *UUIDv7 {
	if now == nil {
		now = time.Now
	}
	return &UUIDv7{now: now, last: -1}
}

// Next returns a new UUID. It panics only if the system's random source
// fails, which crypto/rand documents as not happening on supported systems.
func (g *UUIDv7) Next() UUID {
	ms := g.now().UnixMilli()
	g.mu.Lock()
	switch {
	case ms > g.last:
		g.last, g.seq = ms, 0
	case g.seq < 0xfff:
		g.seq++
	default:
		g.last, g.seq = g.last+1, 0
	}
	ms, seq := g.last, g.seq
	g.mu.Unlock()

	var u UUID
	if _, err := rand.Read(u[8:]); err != nil {
		panic("keys: crypto/rand failed: " + err.Error())
	}
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ms))
	copy(u[:6], ts[2:])
	u[6] = 0x70 | byte(seq>>8) // version 7, high 4 bits of the counter
	u[7] = byte(seq)
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return u
}

// Time returns the millisecond timestamp of a version 7 UUID.
func (u UUID) Time() time.Time {
	var ts [8]byte
	copy(ts[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ts[:])))
}

// Version returns the UUID's version field.
func (u UUID) Version() int { return int(u[6] >> 4) }

// String returns the canonical text form, e.g.
// "01936a2e-7b4c-7000-8f1e-2d3c4b5a6978".
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// ParseUUID parses the canonical text form (36 characters, hyphens at 8, 13,
// 18 and 23, hexadecimal digits in either case). Anything else is an error
// wrapping ErrBadUUID that quotes the input; it is safe on untrusted input.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("%w: %q is not 8-4-4-4-12 hexadecimal digits", ErrBadUUID, s)
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		var b [1]byte
		if _, err := hex.Decode(b[:], []byte(s[i:i+2])); err != nil {
			return UUID{}, fmt.Errorf("%w: %q: bad hexadecimal digit at %d", ErrBadUUID, s, i)
		}
		u[j] = b[0]
		j++
		i += 2
	}
	return u, nil
}
