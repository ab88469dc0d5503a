package httpcache

import (
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// primaryKey is the cache key of RFC 9111 section 2: the target URI
// (scheme, host as the client named it, path and query). GET and HEAD share
// it; other methods are never stored.
func primaryKey(req *http.Request) string {
	scheme := req.URL.Scheme
	if scheme == "" {
		scheme = "http"
		if req.TLS != nil {
			scheme = "https"
		}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return scheme + "://" + strings.ToLower(host) + req.URL.RequestURI()
}

// relatedKey resolves a Location or Content-Location value against req and
// returns its key, if it has the same origin (RFC 9111 section 4.4 forbids
// invalidating another origin's entries, which would be a denial of service).
func relatedKey(req *http.Request, ref string) (string, bool) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", false
	}
	base := *req.URL
	if base.Host == "" || req.Host != "" {
		base.Host = req.Host
	}
	if base.Scheme == "" {
		base.Scheme = "http"
	}
	abs := base.ResolveReference(u)
	if !strings.EqualFold(abs.Host, base.Host) || abs.Scheme != base.Scheme {
		return "", false
	}
	return abs.Scheme + "://" + strings.ToLower(abs.Host) + abs.RequestURI(), true
}

// varyNames returns the canonical, sorted, de-duplicated names of a
// response's Vary fields.
func varyNames(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				names = append(names, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// variantKey is the storage key of the variant that a request with header h
// selects under the Vary names (RFC 9111 section 4.1): the primary key and
// each named field's combined, whitespace-normalized value. An absent field
// and an empty one differ.
func variantKey(primary string, names []string, h http.Header) string {
	var b strings.Builder
	b.WriteString(primary)
	for _, n := range names {
		b.WriteByte(0)
		b.WriteString(n)
		vs, ok := h[n]
		if !ok {
			b.WriteByte(1)
			continue
		}
		b.WriteByte(':')
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(',')
			}
			for j, part := range strings.Split(v, ",") {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.TrimSpace(part))
			}
		}
	}
	return b.String()
}

// index finds entries by primary key and by tag, for invalidation and
// purge. It holds the very pointers stored, so that the deletion event of
// a replaced entry does not unlink its successor. It is never held while
// the store is called, because the store calls back into it.
type index struct {
	// mu guards byPrimary and byTag.
	mu        sync.Mutex
	byPrimary map[string]map[string]*entry
	byTag     map[string]map[string]*entry
}

func (x *index) init() {
	x.byPrimary = map[string]map[string]*entry{}
	x.byTag = map[string]map[string]*entry{}
}

func link(m map[string]map[string]*entry, group string, e *entry) {
	g := m[group]
	if g == nil {
		g = map[string]*entry{}
		m[group] = g
	}
	g[e.key] = e
}

func unlink(m map[string]map[string]*entry, group string, e *entry) {
	if g := m[group]; g != nil && g[e.key] == e {
		delete(g, e.key)
		if len(g) == 0 {
			delete(m, group)
		}
	}
}

func (x *index) add(e *entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	link(x.byPrimary, e.primary, e)
	for _, t := range e.tags {
		link(x.byTag, t, e)
	}
}

func (x *index) remove(e *entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	unlink(x.byPrimary, e.primary, e)
	for _, t := range e.tags {
		unlink(x.byTag, t, e)
	}
}

// keys lists the storage keys in one group of m.
func (x *index) keys(byTag bool, group string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.byPrimary
	if byTag {
		m = x.byTag
	}
	var out []string
	for k := range m[group] {
		out = append(out, k)
	}
	return out
}
