package balancer

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"time"
)

// Sticky cookies pin a client to a pool member without any state shared
// between balancers. The value is base64url (no padding) of
//
//	version (1 byte, 1) | member token (8) | expiry, Unix seconds (4) | HMAC-SHA256 (first 16 bytes)
//
// The member token is a hash of the member's ID, so the cookie names the
// member without revealing its address; the MAC, keyed with the shared
// secret, covers the first 13 bytes, so a cookie cannot be forged or moved
// to another member; the expiry bounds how long a stolen cookie pins. Any
// balancer with the same secret and the same member IDs reads it.
const (
	stickyVersion = 1
	stickyRawLen  = 1 + 8 + 4 + 16
	stickyMACLen  = 16
	// stickyEncLen is the length of the encoded cookie value.
	stickyEncLen = (stickyRawLen*8 + 5) / 6
)

// stickyCodec signs and verifies sticky cookie values. It is safe for
// concurrent use.
type stickyCodec struct {
	macs sync.Pool // of hash.Hash keyed with the secret
}

func newStickyCodec(secret []byte) (*stickyCodec, error) {
	if len(secret) < 16 {
		return nil, errors.New("sticky secret shorter than 16 bytes")
	}
	key := append([]byte(nil), secret...)
	c := &stickyCodec{}
	c.macs.New = func() any { return hmac.New(sha256.New, key) }
	return c, nil
}

func (c *stickyCodec) mac(dst *[sha256.Size]byte, msg []byte) {
	h := c.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	h.Sum(dst[:0])
	c.macs.Put(h)
}

// encode appends the cookie value pinning token until expiry to dst.
func (c *stickyCodec) encode(dst []byte, token [8]byte, expiry time.Time) []byte {
	var raw [stickyRawLen]byte
	raw[0] = stickyVersion
	copy(raw[1:9], token[:])
	binary.BigEndian.PutUint32(raw[9:13], uint32(expiry.Unix()))
	var sum [sha256.Size]byte
	c.mac(&sum, raw[:13])
	copy(raw[13:], sum[:stickyMACLen])
	return base64.RawURLEncoding.AppendEncode(dst, raw[:])
}

// decode verifies a cookie value at wall time now and returns the member
// token it pins and its expiry. Any malformed, forged or expired value is
// simply not ok: a bad cookie is ignored, never an error.
func (c *stickyCodec) decode(v []byte, now time.Time) (token [8]byte, expiry time.Time, ok bool) {
	if len(v) != stickyEncLen {
		return token, expiry, false
	}
	var raw [stickyRawLen]byte
	n, err := base64.RawURLEncoding.Decode(raw[:], v)
	if err != nil || n != stickyRawLen || raw[0] != stickyVersion {
		return token, expiry, false
	}
	var sum [sha256.Size]byte
	c.mac(&sum, raw[:13])
	if subtle.ConstantTimeCompare(sum[:stickyMACLen], raw[13:]) != 1 {
		return token, expiry, false
	}
	expiry = time.Unix(int64(binary.BigEndian.Uint32(raw[9:13])), 0)
	if !now.Before(expiry) {
		return token, expiry, false
	}
	copy(token[:], raw[1:9])
	return token, expiry, true
}
