package dbrouter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// LSN is a position in a write-ahead log (PostgreSQL's pg_lsn): a 64-bit byte
// offset, written as two hexadecimal halves "HI/LO". LSNs of one cluster
// compare as integers, also across a promotion (the new timeline continues
// from the position where the old one ended). A replica that had replayed
// past that point from the old primary has diverged: it cannot follow the
// new primary and must be rebuilt, and its position must not be trusted
// (remove it from Config.Replicas). The zero LSN means "none".
type LSN uint64

// String formats l the way PostgreSQL does, e.g. "16/B374D848".
func (l LSN) String() string {
	return strconv.FormatUint(uint64(l)>>32, 16) + "/" + strings.ToUpper(strconv.FormatUint(uint64(l)&0xFFFFFFFF, 16))
}

// ParseLSN parses PostgreSQL's text form of an LSN ("HI/LO", each half one
// to eight hexadecimal digits). It rejects anything else with an error that
// names the input, so it is safe on untrusted input.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%w: %q has no '/'", ErrBadLSN, s)
	}
	h, err := parseHalf(hi)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: high half: %w", ErrBadLSN, s, err)
	}
	l, err := parseHalf(lo)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: low half: %w", ErrBadLSN, s, err)
	}
	return LSN(h<<32 | l), nil
}

// parseHalf parses one to eight hex digits; strconv alone would also take a
// sign or an underscore-free "0x" prefix, which PostgreSQL never prints.
func parseHalf(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 8 {
		return 0, errors.New("want 1 to 8 hex digits")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return 0, fmt.Errorf("bad hex digit %q", c)
		}
	}
	return strconv.ParseUint(s, 16, 32)
}

// tokenPrefix versions the encoded form of a Token, so a later format (one
// that also names a shard or timeline) can be told apart from this one.
const tokenPrefix = "v1:"

// Token is a consistency token: the primary's WAL position right after a
// write. A read that carries a token is served only by a node that has
// replayed at least that far. The zero Token asks for nothing, and it is what
// every write returns on engines without positions (SQLite), where tokens are
// no-ops. Tokens compare by position; the newer of two is the larger.
type Token struct {
	// LSN is the primary's WAL position after the write.
	LSN LSN
}

// IsZero reports whether t asks for nothing.
func (t Token) IsZero() bool { return t.LSN == 0 }

// Newer returns the newer of t and u.
func (t Token) Newer(u Token) Token {
	if u.LSN > t.LSN {
		return u
	}
	return t
}

// Encode returns t as a short printable string, e.g. "v1:0/16B3748", for a
// session, cookie or header to carry between requests and servers. The zero
// Token encodes as "".
func (t Token) Encode() string {
	if t.IsZero() {
		return ""
	}
	return tokenPrefix + t.LSN.String()
}

// String is Encode.
func (t Token) String() string { return t.Encode() }

// DecodeToken parses what Encode returned. The empty string decodes to the
// zero Token. Anything else that is not a valid token is an error wrapping
// ErrBadToken; it is safe on untrusted input (it never panics).
func DecodeToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: %.40q does not start with %q", ErrBadToken, s, tokenPrefix)
	}
	l, err := ParseLSN(rest)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	return Token{LSN: l}, nil
}

// MarshalText implements encoding.TextMarshaler with Encode.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.Encode()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with DecodeToken.
func (t *Token) UnmarshalText(b []byte) error {
	v, err := DecodeToken(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Session is the read-your-writes scope of one user: it remembers the newest
// token of the writes made through it, and reads made through it wait for
// that position. Store Token().Encode() in the user's session after a
// request and Observe the decoded value at the start of the next one, so the
// scope follows the user across app servers. The zero Session is ready to
// use; it is safe for concurrent use.
type Session struct {
	lsn atomic.Uint64
}

// NewSession returns a Session that starts at t (for example the token
// decoded from the user's session cookie).
func NewSession(t Token) *Session {
	s := &Session{}
	s.Observe(t)
	return s
}

// Token returns the newest token the session has seen.
func (s *Session) Token() Token { return Token{LSN: LSN(s.lsn.Load())} }

// Observe advances the session to t if t is newer; an older t is ignored,
// so tokens arriving out of order never move a session back.
func (s *Session) Observe(t Token) { maxStore(&s.lsn, uint64(t.LSN)) }

// maxStore raises a to v if v is larger, without a lock.
func maxStore(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

type (
	readOnlyKey struct{}
	sessionKey  struct{}
)

// ReadOnly returns a context that declares its queries read-only: the router
// may send them to a replica. Queries under a context without it go to the
// primary. The router never guesses intent from the SQL text.
func ReadOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, readOnlyKey{}, true)
}

// IsReadOnly reports whether ctx was marked by ReadOnly.
func IsReadOnly(ctx context.Context) bool {
	v, _ := ctx.Value(readOnlyKey{}).(bool)
	return v
}

// WithSession returns a context whose writes advance s and whose reads wait
// for s's token. The router does not keep s beyond the call.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the Session carried by ctx, if any.
func SessionFrom(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(*Session)
	return s, ok && s != nil
}
