package localproc

import "sync"

// ring keeps the last size bytes written to it: a child's output, bounded
// however much it writes. Safe for concurrent use.
type ring struct {
	size int
	// mu guards buf and total.
	mu    sync.Mutex
	buf   []byte
	total int64
}

func newRing(size int) *ring { return &ring{size: size} }

// Write keeps the tail of p; it never fails.
func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += int64(len(p))
	if len(p) >= r.size {
		r.buf = append(r.buf[:0], p[len(p)-r.size:]...)
		return len(p), nil
	}
	if over := len(r.buf) + len(p) - r.size; over > 0 {
		r.buf = r.buf[:copy(r.buf, r.buf[over:])]
	}
	r.buf = append(r.buf, p...)
	return len(p), nil
}

// Bytes returns a copy of what is kept, and how many bytes were written
// in all.
func (r *ring) Bytes() ([]byte, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...), r.total
}
