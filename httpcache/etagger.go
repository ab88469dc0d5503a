package httpcache

import (
	"fmt"
	"net/http"
	"strconv"
)

// ETagConfig configures an ETagger.
type ETagConfig struct {
	// Next is the handler whose GET and HEAD responses get ETags. Required.
	Next http.Handler
	// MaxBuffer is the largest body held to compute its tag. A response
	// that grows past it, or that the handler flushes, streams through
	// without an ETag. If zero, 1 MiB is used.
	MaxBuffer int
	// Weak makes computed tags weak (W/"..."), for bodies that a later
	// stage may re-encode without changing their meaning.
	Weak bool
}

// ETagger is middleware that gives successful GET and HEAD responses an
// ETag computed from their content (unless the handler set one) and answers
// If-None-Match and If-Modified-Since with 304 (RFC 9110 section 13.2.2).
// It is safe for concurrent use.
type ETagger struct {
	next http.Handler
	max  int
	weak bool
}

// NewETagger returns an ETagger for cfg; see ETagConfig for the defaults.
func NewETagger(cfg ETagConfig) (*ETagger, error) {
	if cfg.Next == nil {
		return nil, fmt.Errorf("etagger: Next is nil: %w", ErrBadConfig)
	}
	if cfg.MaxBuffer < 0 {
		return nil, fmt.Errorf("etagger: negative MaxBuffer %d: %w", cfg.MaxBuffer, ErrBadConfig)
	}
	if cfg.MaxBuffer == 0 {
		cfg.MaxBuffer = 1 << 20
	}
	return &ETagger{next: cfg.Next, max: cfg.MaxBuffer, weak: cfg.Weak}, nil
}

// ServeHTTP serves r through the wrapped handler.
func (t *ETagger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		t.next.ServeHTTP(w, r)
		return
	}
	bw := &bufferingWriter{w: w, max: t.max, code: http.StatusOK}
	t.next.ServeHTTP(bw, r)
	if bw.streaming {
		return
	}
	h := w.Header()
	if bw.code != http.StatusOK {
		bw.flushAll()
		return
	}
	etag := h.Get("Etag")
	if etag == "" && r.Method == http.MethodHead && len(bw.buf) == 0 {
		// A HEAD handler that wrote no body: a tag of nothing would lie.
		bw.flushAll()
		return
	}
	if etag == "" {
		etag = ContentETag(bw.buf)
		if t.weak {
			etag = "W/" + etag
		}
	}
	v := Validators{ETag: etag}
	if lm, ok := ParseHTTPDate(h.Get("Last-Modified")); ok {
		v.LastModified = lm
	}
	if CheckPreconditions(w, r, v) {
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(bw.buf)))
	bw.flushAll()
}

// bufferingWriter holds a response until it ends or outgrows max.
type bufferingWriter struct {
	w         http.ResponseWriter
	max       int
	code      int
	wrote     bool // WriteHeader called by the handler
	streaming bool // gave up buffering: everything goes straight to w
	buf       []byte
}

func (b *bufferingWriter) Header() http.Header { return b.w.Header() }

func (b *bufferingWriter) WriteHeader(code int) {
	if b.streaming {
		b.w.WriteHeader(code)
		return
	}
	if !b.wrote {
		b.code, b.wrote = code, true
	}
}

func (b *bufferingWriter) Write(p []byte) (int, error) {
	if b.streaming {
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) <= b.max {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if err := b.stream(); err != nil {
		return 0, err
	}
	return b.w.Write(p)
}

// stream switches to pass-through, writing what was held.
func (b *bufferingWriter) stream() error {
	b.streaming = true
	b.w.WriteHeader(b.code)
	_, err := b.w.Write(b.buf)
	b.buf = nil
	return err
}

func (b *bufferingWriter) flushAll() {
	b.w.WriteHeader(b.code)
	_, _ = b.w.Write(b.buf)
}

// Flush streams: a handler that flushes wants its bytes out now.
func (b *bufferingWriter) Flush() {
	if !b.streaming {
		_ = b.stream()
	}
	_ = http.NewResponseController(b.w).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (b *bufferingWriter) Unwrap() http.ResponseWriter { return b.w }
