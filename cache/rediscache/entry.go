package rediscache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"scaleout/cache"
)

// ErrCorrupt is returned by decodeEntry for bytes that are not an entry
// this package wrote (another program's value, or a truncated one).
var ErrCorrupt = errors.New("rediscache: corrupt entry")

// Entry layout, version 1:
//
//	'S' 1 flags expires-unix-ms(varint) delta-µs(uvarint)
//	keyToken(str) ntags(uvarint) [tag(str) tagToken(str)]... value(rest)
//
// where str is a uvarint length followed by that many bytes. The tokens are
// the generations the entry was filled under; Get serves the entry only
// while they are all still live.
const (
	magic0, magic1 = 'S', 1
	flagNegative   = 1
	maxTags        = 1024
)

// header is an entry decoded, with the generations it was filled under.
type header struct {
	entry     *cache.Entry
	keyToken  string
	tagTokens []string
}

func encodeEntry(e *cache.Entry, keyToken string, tagTokens []string) []byte {
	n := 32 + len(keyToken) + len(e.Value)
	for i, t := range e.Tags {
		n += len(t) + len(tagTokens[i]) + 4
	}
	b := make([]byte, 0, n)
	var flags byte
	if e.Negative {
		flags |= flagNegative
	}
	b = append(b, magic0, magic1, flags)
	b = binary.AppendVarint(b, e.Expires.UnixMilli())
	b = binary.AppendUvarint(b, uint64(max(e.Delta, 0)/time.Microsecond))
	b = appendStr(b, keyToken)
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for i, t := range e.Tags {
		b = appendStr(b, t)
		b = appendStr(b, tagTokens[i])
	}
	return append(b, e.Value...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry parses bytes read from Redis, which may be anything: it
// returns an error wrapping ErrCorrupt, never panics.
func decodeEntry(b []byte) (*header, error) {
	if len(b) < 3 || b[0] != magic0 || b[1] != magic1 {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	r := reader{b: b[3:]}
	e := &cache.Entry{Negative: b[2]&flagNegative != 0}
	e.Expires = time.UnixMilli(r.varint())
	delta := r.uvarint()
	if delta > uint64(1<<62)/uint64(time.Microsecond) {
		return nil, fmt.Errorf("%w: load time out of range", ErrCorrupt)
	}
	e.Delta = time.Duration(delta) * time.Microsecond
	h := &header{entry: e, keyToken: r.str()}
	n := r.uvarint()
	if n > maxTags {
		return nil, fmt.Errorf("%w: %d tags", ErrCorrupt, n)
	}
	if n > 0 {
		e.Tags = make([]string, n)
		h.tagTokens = make([]string, n)
		for i := range e.Tags {
			e.Tags[i], h.tagTokens[i] = r.str(), r.str()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) > 0 {
		e.Value = r.b
	}
	return h, nil
}

// reader reads the fields of an entry; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
