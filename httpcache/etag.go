package httpcache

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// ETag is an entity tag (RFC 9110 section 8.8.3): an opaque string, without
// its quotes, and whether it is weak.
type ETag struct {
	Weak   bool
	Opaque string
}

// String formats t as a field value: "xyz" or W/"xyz".
func (t ETag) String() string {
	if t.Weak {
		return `W/"` + t.Opaque + `"`
	}
	return `"` + t.Opaque + `"`
}

// StrongMatch reports whether t and u match by the strong comparison of
// RFC 9110 section 8.8.3.2: both strong and the same opaque tag.
func (t ETag) StrongMatch(u ETag) bool {
	return !t.Weak && !u.Weak && t.Opaque == u.Opaque
}

// WeakMatch reports whether t and u match by the weak comparison: the same
// opaque tag, weak or not.
func (t ETag) WeakMatch(u ETag) bool { return t.Opaque == u.Opaque }

// ParseETag parses one entity-tag field value, such as the ETag header.
// It returns ErrBadETag, wrapped with the value, when s is not an entity-tag.
func ParseETag(s string) (ETag, error) {
	t, rest, ok := cutETag(strings.TrimSpace(s))
	if !ok || strings.TrimSpace(rest) != "" {
		return ETag{}, fmt.Errorf("entity-tag %q: %w", s, ErrBadETag)
	}
	return t, nil
}

// ParseETagList parses an If-Match or If-None-Match field: either "*" (any
// is true) or a comma-separated list of entity-tags. Elements that are not
// entity-tags are skipped, so a client's garbage can only fail to match; ok
// is false when nothing valid was found.
func ParseETagList(lines []string) (tags []ETag, any bool, ok bool) {
	for _, line := range lines {
		s := line
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			if s[0] == '*' {
				any, ok = true, true
				s = s[1:]
				continue
			}
			t, rest, valid := cutETag(s)
			if !valid {
				// Skip to the next comma outside the broken element.
				i := strings.IndexByte(s, ',')
				if i < 0 {
					break
				}
				s = s[i:]
				continue
			}
			tags = append(tags, t)
			ok = true
			s = rest
		}
	}
	return tags, any, ok
}

// cutETag parses an entity-tag at the start of s and returns what follows.
// etagc is %x21 / %x23-7E / obs-text: anything visible but the DQUOTE.
func cutETag(s string) (ETag, string, bool) {
	var t ETag
	if strings.HasPrefix(s, "W/") {
		t.Weak = true
		s = s[2:]
	}
	if len(s) < 2 || s[0] != '"' {
		return ETag{}, s, false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			t.Opaque = s[1:i]
			return t, s[i+1:], true
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return ETag{}, s, false
		}
	}
	return ETag{}, s, false
}

// ContentETag returns a strong ETag computed from content: a truncated
// SHA-256, so that equal bytes give equal tags on every app server.
func ContentETag(content []byte) string {
	sum := sha256.Sum256(content)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// VersionETag returns an ETag built from a version the handler supplies
// (a row version, a revision counter, a content hash it already has), weak
// when weak is set. Characters that may not appear in an entity-tag are
// replaced by '_', so any string is safe to pass.
func VersionETag(version string, weak bool) string {
	b := []byte(version)
	for i, c := range b {
		if !(c == 0x21 || (c >= 0x23 && c <= 0x7e)) {
			b[i] = '_'
		}
	}
	return ETag{Weak: weak, Opaque: string(b)}.String()
}

// ParseHTTPDate parses an HTTP-date (RFC 9110 section 5.6.7) in any of the
// three formats a recipient must accept. It reports false for anything else.
func ParseHTTPDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	for _, layout := range [...]string{time.RFC1123, time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, s); err == nil {
			if layout == time.RFC1123 && !strings.HasSuffix(s, " GMT") {
				return time.Time{}, false
			}
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
