// Package cookiestore keeps a whole session in its cookie: the client-side
// store of package session. The value is signed with HMAC-SHA256, or, with
// Config.Encrypt, sealed with AES-256-GCM so its contents are private too.
//
// Keys rotate without logging anyone out: every value names the id of the
// key that made it; the first key of Config.Keys signs, and every listed key
// verifies. Each value carries its issue time, and values older than
// Config.MaxAge are refused. The payload is JSON (never gob, which would
// decode attacker-chosen types). Comparisons are constant-time.
//
// Value layout, in unpadded base64url fields joined by ".":
//
//	signed:    kid.payload.mac   mac = HMAC-SHA256(k_mac, name 0x00 kid "." payload)
//	encrypted: kid.sealed        sealed = nonce(12) | AES-GCM(k_enc, ts|json, aad = name 0x00 kid)
//
// where payload is an 8-byte big-endian Unix time followed by the session's
// JSON, and k_mac and k_enc are derived from the key's secret with HKDF-SHA256
// so that one secret never serves two purposes. The cookie name is
// authenticated too, so a value cannot be moved to another cookie.
package cookiestore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"scaleout/session"
)

// Key is one secret, named by a short id that goes in every value it makes.
type Key struct {
	// ID names the key: 1 to 16 characters of [A-Za-z0-9_-].
	ID string
	// Secret is at least 32 random bytes; the codec copies it.
	Secret []byte
}

// Config configures a Codec.
type Config struct {
	// Keys are the current keys, newest first: Keys[0] signs (or seals),
	// all of them verify. At least one is required; ids must be distinct.
	Keys []Key
	// Encrypt seals values with AES-256-GCM instead of only signing them.
	// A codec accepts only values made in its own mode.
	Encrypt bool
	// MaxAge refuses values issued longer ago than this. If zero, 24 hours
	// (the session.Manager's default lifetime) is used. A Manager reissues
	// the cookie as the session is used, so MaxAge must be at least the
	// Manager's IdleTimeout; the Manager enforces the lifetimes itself.
	MaxAge time.Duration
	// MaxSize is the largest "name=value" accepted or produced, in bytes. If
	// zero, 4096 is used: the size that every browser stores (RFC 6265
	// section 6.1).
	MaxSize int
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Codec encodes sessions into cookie values and back; it implements
// session.Codec. It is safe for concurrent use.
type Codec struct {
	keys    []*key
	encrypt bool
	maxAge  time.Duration
	maxSize int
	now     func() time.Time
}

// key is a Key made ready: derived secrets, a pool of HMAC states, an AEAD.
type key struct {
	id   string
	macs sync.Pool // of *macState keyed with k_mac
	aead cipher.AEAD
}

// New returns a Codec for cfg, or an error naming what is wrong with it.
func New(cfg Config) (*Codec, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("cookiestore: config: no Keys")
	}
	if cfg.MaxAge < 0 || cfg.MaxSize < 0 {
		return nil, fmt.Errorf("cookiestore: config: negative MaxAge %v or MaxSize %d", cfg.MaxAge, cfg.MaxSize)
	}
	c := &Codec{encrypt: cfg.Encrypt, maxAge: cfg.MaxAge, maxSize: cfg.MaxSize, now: cfg.Now}
	if c.maxAge == 0 {
		c.maxAge = 24 * time.Hour
	}
	if c.maxSize == 0 {
		c.maxSize = 4096
	}
	if c.now == nil {
		c.now = time.Now
	}
	seen := map[string]bool{}
	for i, k := range cfg.Keys {
		if !validID(k.ID) {
			return nil, fmt.Errorf("cookiestore: config: Keys[%d]: id %q is not 1-16 characters of [A-Za-z0-9_-]", i, k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("cookiestore: config: Keys[%d]: duplicate id %q", i, k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) < 32 {
			return nil, fmt.Errorf("cookiestore: config: key %q: secret is %d bytes, want at least 32", k.ID, len(k.Secret))
		}
		pk, err := prepare(k)
		if err != nil {
			return nil, fmt.Errorf("cookiestore: config: key %q: %w", k.ID, err)
		}
		c.keys = append(c.keys, pk)
	}
	return c, nil
}

func prepare(k Key) (*key, error) {
	macKey, err := hkdf.Key(sha256.New, k.Secret, nil, "scaleout session mac", 32)
	if err != nil {
		return nil, err
	}
	encKey, err := hkdf.Key(sha256.New, k.Secret, nil, "scaleout session aes-gcm", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	pk := &key{id: k.ID, aead: aead}
	pk.macs.New = func() any { return &macState{h: hmac.New(sha256.New, macKey)} }
	return pk, nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

var b64 = base64.RawURLEncoding

// b64MACLen is the length of a SHA-256 MAC in unpadded base64.
const b64MACLen = (sha256.Size*8 + 5) / 6

// Encode returns the cookie value for d under the cookie name, or an error
// wrapping session.ErrTooLarge when "name=value" would exceed MaxSize.
func (c *Codec) Encode(name string, d *session.Data) (string, error) {
	k := c.keys[0]
	bp := scratch.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 16<<10 {
			scratch.Put(bp)
		}
	}()
	// plain, then its base64 (or the sealed text's), share one buffer.
	plain := append((*bp)[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint64(plain, uint64(c.now().Unix()))
	plain = d.AppendJSON(plain)
	var body []byte
	if c.encrypt {
		var nonce [12]byte
		rand.Read(nonce[:])
		sealed := k.aead.Seal(nonce[:], nonce[:], plain, aad(name, k.id))
		body = b64.AppendEncode(plain[len(plain):], sealed)
	} else {
		body = b64.AppendEncode(plain[len(plain):], plain)
	}
	*bp = plain[:0] // keep the (possibly grown) buffer from its start
	size := len(k.id) + 1 + len(body)
	if !c.encrypt {
		size += 1 + b64MACLen
	}
	if total := len(name) + 1 + size; total > c.maxSize {
		return "", fmt.Errorf("%w: cookie %q would be %d bytes, the limit is %d", session.ErrTooLarge, name, total, c.maxSize)
	}
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteString(k.id)
	sb.WriteByte('.')
	sb.Write(body)
	if !c.encrypt {
		mac := k.sumString(name, sb.String())
		var macText [b64MACLen]byte
		b64.Encode(macText[:], mac[:])
		sb.WriteByte('.')
		sb.Write(macText[:])
	}
	return sb.String(), nil
}

// scratch holds buffers for Encode, which keeps nothing of them.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// macState is a keyed HMAC with scratch space, pooled so that signing and
// verifying allocate nothing.
type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// sum is the MAC of name 0x00 signed, where signed is "kid.payload".
func (k *key) sum(name string, signed []byte) [sha256.Size]byte {
	m := k.macs.Get().(*macState)
	m.buf = append(append(append(m.buf[:0], name...), 0), signed...)
	return k.finish(m)
}

// sumString is sum for a signed part held in a string (no conversion).
func (k *key) sumString(name, signed string) [sha256.Size]byte {
	m := k.macs.Get().(*macState)
	m.buf = append(append(append(m.buf[:0], name...), 0), signed...)
	return k.finish(m)
}

func (k *key) finish(m *macState) [sha256.Size]byte {
	m.h.Reset()
	m.h.Write(m.buf)
	sum := [sha256.Size]byte(m.h.Sum(m.sum[:0]))
	if cap(m.buf) <= 8192 {
		k.macs.Put(m)
	}
	return sum
}

func aad(name, kid string) []byte {
	b := make([]byte, 0, len(name)+1+len(kid))
	b = append(b, name...)
	b = append(b, 0)
	return append(b, kid...)
}

// Decode returns the session in value. Any value it refuses (tampered,
// truncated, too large, expired, from the future, made by an unknown key or
// in the other mode) gives an error wrapping session.ErrInvalidCookie.
func (c *Codec) Decode(name, value string) (session.Data, error) {
	plain, err := c.open(name, value)
	if err != nil {
		return session.Data{}, fmt.Errorf("%w: %s", session.ErrInvalidCookie, err)
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(plain[:8])), 0)
	now := c.now()
	if now.Sub(issued) > c.maxAge || issued.Sub(now) > time.Minute {
		return session.Data{}, fmt.Errorf("%w: issued %s, outside max age %v", session.ErrInvalidCookie, issued.UTC().Format(time.RFC3339), c.maxAge)
	}
	d, err := session.ParseData(plain[8:])
	if err != nil {
		return session.Data{}, fmt.Errorf("%w: %w", session.ErrInvalidCookie, err)
	}
	return d, nil
}

// open checks value's signature (or opens its seal) and returns the payload,
// at least 8 bytes long.
func (c *Codec) open(name, value string) ([]byte, error) {
	if len(name)+1+len(value) > c.maxSize {
		return nil, fmt.Errorf("%d bytes, over the %d limit", len(name)+1+len(value), c.maxSize)
	}
	kid, rest, ok := strings.Cut(value, ".")
	if !ok {
		return nil, errors.New("no key id")
	}
	k := c.find(kid)
	if k == nil {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	if c.encrypt {
		return c.unseal(k, name, rest)
	}
	payload, macText, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, errors.New("no signature")
	}
	var mac [sha256.Size]byte
	if len(macText) != b64.EncodedLen(len(mac)) {
		return nil, errors.New("malformed signature")
	}
	var macBuf [b64MACLen]byte
	copy(macBuf[:], macText)
	if n, err := b64.Decode(mac[:], macBuf[:]); err != nil || n != len(mac) {
		return nil, errors.New("malformed signature")
	}
	want := k.sumString(name, value[:len(kid)+1+len(payload)])
	if !hmac.Equal(mac[:], want[:]) {
		return nil, errors.New("bad signature")
	}
	plain, err := b64.DecodeString(payload)
	if err != nil || len(plain) < 8 {
		return nil, errors.New("malformed payload")
	}
	return plain, nil
}

func (c *Codec) unseal(k *key, name, text string) ([]byte, error) {
	sealed, err := b64.DecodeString(text)
	if err != nil || len(sealed) < 12+k.aead.Overhead()+8 {
		return nil, errors.New("malformed sealed payload")
	}
	plain, err := k.aead.Open(nil, sealed[:12], sealed[12:], aad(name, k.id))
	if err != nil {
		return nil, errors.New("seal does not open")
	}
	return plain, nil
}

func (c *Codec) find(kid string) *key {
	for _, k := range c.keys {
		if k.id == kid {
			return k
		}
	}
	return nil
}
