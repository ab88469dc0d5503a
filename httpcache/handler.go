package httpcache

import (
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Handler returns an http.Handler that answers server requests through the
// cache: each request is turned into a client request for the same URL
// (the Host the client named, and http or https by the connection) and
// passed to RoundTrip. Transport errors become 502 Bad Gateway. The handler
// is safe for concurrent use. Config.Next must route to the origin by
// itself (rewriting the URL's host), since the URL it receives names this
// handler's own Host.
func (s *Shared) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A shallow copy: RoundTrip never modifies a request's fields
		// (it clones before forwarding), so the header map is shared.
		out := new(http.Request)
		*out = *r
		u := *r.URL
		u.Host, u.Scheme = r.Host, "http"
		if r.TLS != nil {
			u.Scheme = "https"
		}
		out.URL, out.RequestURI = &u, ""
		if r.ContentLength == 0 {
			out.Body = nil
		}
		res, err := s.RoundTrip(out)
		if err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, r.Context().Err()) && r.Context().Err() != nil {
				return
			}
			w.Header()["Cache-Status"] = []string{s.name + "; fwd=miss; detail=origin-error"}
			http.Error(w, "upstream error", code)
			return
		}
		defer res.Body.Close()
		h := w.Header()
		for k, v := range res.Header {
			h[k] = v
		}
		// The length is the response's, whatever a stored field says.
		delete(h, "Content-Length")
		if res.ContentLength >= 0 && res.StatusCode != http.StatusNotModified {
			h["Content-Length"] = []string{strconv.FormatInt(res.ContentLength, 10)}
		}
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
	})
}
