// Package flask reads and writes Flask's default session cookie, so that a
// Flask app and a Go app behind one balancer share sessions. It implements
// session.Codec.
//
// Flask signs its session with itsdangerous' URLSafeTimedSerializer: salt
// "cookie-session", HMAC key derivation, SHA-1. The value is
//
//	payload.timestamp.signature
//
// where payload is the session's JSON in unpadded base64url, zlib-compressed
// and prefixed with "." when that is shorter; timestamp is the Unix time as
// a minimal big-endian integer in base64url; and signature is
// HMAC-SHA1(HMAC-SHA1(secret, salt), "payload.timestamp") in base64url.
//
// Flask's tagged JSON (tuples, bytes, dates written as {" t": ...}) passes
// through untouched as the raw JSON values of session.Data. The Go side's
// own fields (creation and last-seen times, user, generation) ride in one
// extra key, "_scaleout", which a Flask app carries along without reading.
// A cookie made by Flask, without that key, counts as created when it was
// signed.
package flask

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"scaleout/session"
)

// Config configures a Codec.
type Config struct {
	// Secrets are Flask's SECRET_KEY first, then SECRET_KEY_FALLBACKS: the
	// first signs, all verify. At least one is required.
	Secrets [][]byte
	// Salt is itsdangerous' salt. If empty, "cookie-session" (Flask's) is
	// used.
	Salt string
	// MaxAge refuses cookies signed longer ago. If zero, 31 days (Flask's
	// PERMANENT_SESSION_LIFETIME) is used.
	MaxAge time.Duration
	// UserKey, if set, is the session key that holds the user id on the
	// Flask side (Flask-Login uses "_user_id"); Data.User is read from and
	// written to it, so a login on either side is a login on both.
	UserKey string
	// MaxSize is the largest "name=value" produced or accepted. If zero,
	// 4096 is used.
	MaxSize int
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Codec is a session.Codec for Flask's cookies. It is safe for concurrent
// use.
type Codec struct {
	keys    [][]byte // derived keys, signing key first
	maxAge  time.Duration
	userKey string
	maxSize int
	now     func() time.Time
}

// metaKey holds the Go side's session fields in the Flask session.
const metaKey = "_scaleout"

// maxInflated bounds a compressed payload's inflated size (zip bombs).
const maxInflated = 64 << 10

var b64 = base64.RawURLEncoding

// New returns a Codec for cfg, or an error naming what is wrong with it.
func New(cfg Config) (*Codec, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("flask: config: no Secrets")
	}
	if cfg.MaxAge < 0 || cfg.MaxSize < 0 {
		return nil, fmt.Errorf("flask: config: negative MaxAge %v or MaxSize %d", cfg.MaxAge, cfg.MaxSize)
	}
	if cfg.Salt == "" {
		cfg.Salt = "cookie-session"
	}
	c := &Codec{maxAge: cfg.MaxAge, userKey: cfg.UserKey, maxSize: cfg.MaxSize, now: cfg.Now}
	if c.maxAge == 0 {
		c.maxAge = 31 * 24 * time.Hour
	}
	if c.maxSize == 0 {
		c.maxSize = 4096
	}
	if c.now == nil {
		c.now = time.Now
	}
	for i, s := range cfg.Secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("flask: config: Secrets[%d] is empty", i)
		}
		// itsdangerous key_derivation="hmac": HMAC(secret, salt).
		m := hmac.New(sha1.New, s)
		m.Write([]byte(cfg.Salt))
		c.keys = append(c.keys, m.Sum(nil))
	}
	return c, nil
}

// meta is the Go side's fields, kept under metaKey.
type meta struct {
	C int64  `json:"c"`
	S int64  `json:"s"`
	U string `json:"u,omitempty"`
	G int64  `json:"g,omitempty"`
}

// Encode returns a Flask session cookie value for d.
func (c *Codec) Encode(name string, d *session.Data) (string, error) {
	obj := make(map[string]json.RawMessage, len(d.Values)+2)
	for k, v := range d.Values {
		obj[k] = v
	}
	m, _ := json.Marshal(meta{C: d.Created.Unix(), S: d.Seen.Unix(), U: d.User, G: d.Gen})
	obj[metaKey] = m
	if c.userKey != "" && d.User != "" {
		obj[c.userKey], _ = json.Marshal(d.User)
	}
	js, err := json.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("flask: encode: %w", err)
	}
	payload := b64.EncodeToString(js)
	if z := deflate(js); len(z) < len(js)-1 { // as itsdangerous decides
		payload = "." + b64.EncodeToString(z)
	}
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(c.now().Unix()))
	i := 0
	for i < 7 && ts[i] == 0 {
		i++
	}
	value := payload + "." + b64.EncodeToString(ts[i:])
	value += "." + b64.EncodeToString(sign(c.keys[0], value))
	if size := len(name) + 1 + len(value); size > c.maxSize {
		return "", fmt.Errorf("%w: cookie %q would be %d bytes, the limit is %d", session.ErrTooLarge, name, size, c.maxSize)
	}
	return value, nil
}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func sign(key []byte, value string) []byte {
	m := hmac.New(sha1.New, key)
	io.WriteString(m, value)
	return m.Sum(nil)
}

// Decode returns the session in a Flask cookie value; anything refused gives
// an error wrapping session.ErrInvalidCookie.
func (c *Codec) Decode(name, value string) (session.Data, error) {
	d, err := c.decode(value)
	if err != nil {
		return session.Data{}, fmt.Errorf("%w: flask cookie: %s", session.ErrInvalidCookie, err)
	}
	return d, nil
}

func (c *Codec) decode(value string) (session.Data, error) {
	if len(value) > c.maxSize {
		return session.Data{}, fmt.Errorf("%d bytes, over the %d limit", len(value), c.maxSize)
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return session.Data{}, errors.New("no signature")
	}
	signed, sigText := value[:i], value[i+1:]
	sig, err := b64.DecodeString(sigText)
	if err != nil {
		return session.Data{}, errors.New("malformed signature")
	}
	if !c.verify(signed, sig) {
		return session.Data{}, errors.New("bad signature")
	}
	j := strings.LastIndexByte(signed, '.')
	if j < 0 {
		return session.Data{}, errors.New("no timestamp")
	}
	issued, err := parseTimestamp(signed[j+1:])
	if err != nil {
		return session.Data{}, err
	}
	now := c.now()
	if now.Sub(issued) > c.maxAge || issued.Sub(now) > time.Minute {
		return session.Data{}, fmt.Errorf("signed %s, outside max age %v", issued.UTC().Format(time.RFC3339), c.maxAge)
	}
	js, err := payloadJSON(signed[:j])
	if err != nil {
		return session.Data{}, err
	}
	return c.toData(js, issued)
}

func (c *Codec) verify(signed string, sig []byte) bool {
	for _, k := range c.keys {
		if hmac.Equal(sig, sign(k, signed)) {
			return true
		}
	}
	return false
}

func parseTimestamp(s string) (time.Time, error) {
	b, err := b64.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > 8 {
		return time.Time{}, errors.New("malformed timestamp")
	}
	var ts [8]byte
	copy(ts[8-len(b):], b)
	n := binary.BigEndian.Uint64(ts[:])
	if n > 1<<40 {
		return time.Time{}, errors.New("timestamp out of range")
	}
	return time.Unix(int64(n), 0), nil
}

// payloadJSON undoes base64 and, for a "."-prefixed payload, zlib.
func payloadJSON(p string) ([]byte, error) {
	compressed := strings.HasPrefix(p, ".")
	raw, err := b64.DecodeString(strings.TrimPrefix(p, "."))
	if err != nil {
		return nil, errors.New("malformed payload")
	}
	if !compressed {
		return raw, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, errors.New("malformed compressed payload")
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil || len(js) > maxInflated {
		return nil, errors.New("malformed or oversized compressed payload")
	}
	return js, nil
}

// toData turns a Flask session's JSON into session.Data.
func (c *Codec) toData(js []byte, issued time.Time) (session.Data, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(js, &obj); err != nil {
		return session.Data{}, errors.New("payload is not a JSON object")
	}
	d := session.Data{Values: obj, Created: issued, Seen: issued}
	if raw, ok := obj[metaKey]; ok {
		delete(obj, metaKey)
		var m meta
		if err := json.Unmarshal(raw, &m); err != nil || m.C <= 0 || m.S < m.C {
			return session.Data{}, errors.New("malformed " + metaKey)
		}
		d.Created, d.Seen, d.User, d.Gen = time.Unix(m.C, 0), time.Unix(m.S, 0), m.U, m.G
	}
	if c.userKey != "" {
		if raw, ok := obj[c.userKey]; ok {
			var u any
			json.Unmarshal(raw, &u)
			d.User = strings.Trim(string(raw), `"`)
			if s, ok := u.(string); ok {
				d.User = s
			}
		} else {
			d.User, d.Gen = "", 0 // logged out on the Flask side
		}
	}
	if len(obj) == 0 {
		d.Values = nil
	}
	return d, nil
}
