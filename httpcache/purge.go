package httpcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Purge is one purge order, as the admin API receives it:
// {"urls": ["http://host/path"], "tags": ["flights"]}.
type Purge struct {
	URLs []string `json:"urls,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

// Purger carries out a purge order. *Shared purges itself; a fan-out
// implementation (for instance one publishing on Redis pub/sub to every
// balancer, each of which then calls its own Shared.Purge) satisfies it too.
type Purger interface {
	Purge(ctx context.Context, p Purge) (int, error)
}

// Purge removes every entry for p's URLs (all variants) and tags and returns
// how many went. A bad URL fails the whole order before anything is removed.
// Safe for concurrent use.
func (s *Shared) Purge(_ context.Context, p Purge) (int, error) {
	for _, u := range p.URLs {
		if err := checkPurgeURL(u); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, u := range p.URLs {
		m, err := s.PurgeURL(u)
		if err != nil {
			return n, err
		}
		n += m
	}
	for _, t := range p.Tags {
		n += s.PurgeTag(t)
	}
	return n, nil
}

// maxPurgeBody bounds the JSON a purge request may send.
const maxPurgeBody = 1 << 20

// PurgeHandler serves the admin API's POST /api/cache/purge: a JSON Purge
// in the body, handed to p, answered with {"purged": n}. Bad input gets
// 400 with a message naming what is wrong; other methods get 405. The
// handler is safe for concurrent use; authentication is the caller's.
func PurgeHandler(p Purger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "purge: use POST", http.StatusMethodNotAllowed)
			return
		}
		var order Purge
		dec := json.NewDecoder(io.LimitReader(r.Body, maxPurgeBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&order); err != nil {
			http.Error(w, fmt.Sprintf("purge: body is not {\"urls\": [...], \"tags\": [...]}: %v", err), http.StatusBadRequest)
			return
		}
		if len(order.URLs) == 0 && len(order.Tags) == 0 {
			http.Error(w, "purge: no urls and no tags given", http.StatusBadRequest)
			return
		}
		n, err := p.Purge(r.Context(), order)
		switch {
		case errors.Is(err, ErrBadPurge):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil:
			http.Error(w, "purge: "+err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"purged": n})
	})
}
