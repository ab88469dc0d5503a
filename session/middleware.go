package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Handler returns middleware that loads the request's session before next
// runs (reach it with FromContext) and saves it just before the response's
// headers are written, or after next returns if it wrote nothing. A request
// whose session cookie is refused goes on with a fresh empty session. When
// the store fails or the session outgrows its cookie, Config.ErrorHandler
// answers instead.
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Load(r)
		if err != nil {
			m.log.Error("session load", "err", err)
			m.cfg.ErrorHandler(w, r, err)
			return
		}
		r = r.WithContext(NewContext(r.Context(), s))
		sw := &sessionWriter{ResponseWriter: w, m: m, r: r, s: s}
		next.ServeHTTP(sw, r)
		sw.commit()
	})
}

// sessionWriter saves the session when the handler first writes.
type sessionWriter struct {
	http.ResponseWriter
	m         *Manager
	r         *http.Request
	s         *Session
	committed bool
	// failed: the save failed and the error response was sent, so the
	// handler's own response is discarded.
	failed bool
}

func (w *sessionWriter) commit() {
	if w.committed {
		return
	}
	w.committed = true
	if err := w.m.Save(w.ResponseWriter, w.r, w.s); err != nil {
		w.m.log.Error("session save", "err", err)
		w.failed = true
		w.m.cfg.ErrorHandler(w.ResponseWriter, w.r, err)
	}
}

func (w *sessionWriter) WriteHeader(code int) {
	w.commit()
	if !w.failed {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	w.commit()
	if w.failed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush saves the session, then flushes if the underlying writer can.
func (w *sessionWriter) Flush() {
	w.commit()
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.failed {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Save writes s out: to the Store (with reload-and-replay on a concurrent
// change) and as a Set-Cookie header on w, which must not have written its
// headers yet. It does nothing when nothing changed. Handler calls it; call
// it yourself only when not using Handler.
func (m *Manager) Save(w http.ResponseWriter, r *http.Request, s *Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := r.Context()
	if m.cfg.Store != nil {
		for _, id := range s.stale {
			if err := m.cfg.Store.Delete(ctx, id); err != nil {
				return fmt.Errorf("session delete: %w", err)
			}
		}
		s.stale = nil
	}
	if s.destroyed || (s.clearCookie && !s.modified) {
		m.setCookie(w, r, "", time.Time{})
		s.destroyed, s.clearCookie = false, false
		return nil
	}
	if !s.modified && !s.touched {
		return nil
	}
	var value string
	var err error
	if m.cfg.Codec != nil {
		value, err = m.cfg.Codec.Encode(m.cfg.CookieName, &s.data)
	} else {
		value, err = m.saveToStore(ctx, s)
	}
	if err != nil {
		return err
	}
	if value == "" { // destroyed by a concurrent request
		m.setCookie(w, r, "", time.Time{})
		return nil
	}
	m.setCookie(w, r, value, m.expiry(&s.data))
	s.modified, s.touched, s.renew, s.clearCookie, s.changes = false, false, false, false, nil
	return nil
}

// expiry is when d ends unless another request comes: the earlier of the
// absolute lifetime and the idle timeout.
func (m *Manager) expiry(d *Data) time.Time {
	a, b := d.Created.Add(m.cfg.Lifetime), d.Seen.Add(m.cfg.IdleTimeout)
	if b.Before(a) {
		return b
	}
	return a
}

// saveToStore saves s (s.mu held) under its token, issuing a new one if it
// has none or is being renewed, and returns the token; "" means a concurrent
// request destroyed the session, which then stays destroyed.
func (m *Manager) saveToStore(ctx context.Context, s *Session) (string, error) {
	st := m.cfg.Store
	if s.token == "" || s.renew {
		if s.token != "" {
			if err := st.Delete(ctx, HashToken(s.token)); err != nil {
				return "", fmt.Errorf("session renew: %w", err)
			}
		}
		s.token, s.version = newToken(), 0
	}
	id := HashToken(s.token)
	for attempt := 1; ; attempt++ {
		err := st.Save(ctx, id, s.data.AppendJSON(nil), m.expiry(&s.data), s.version)
		if err == nil {
			s.version++
			return s.token, nil
		}
		if !errors.Is(err, ErrConflict) || attempt == maxSaveAttempts {
			return "", fmt.Errorf("session save: %w", err)
		}
		// Another request saved first: replay our changes onto its copy.
		e, found, err := st.Load(ctx, id)
		if err != nil {
			return "", fmt.Errorf("session reload: %w", err)
		}
		d, perr := ParseData(e.Data)
		if !found || perr != nil {
			s.destroyLocked()
			return "", nil
		}
		d.Seen = s.data.Seen
		s.data, s.version = d, e.Version
		for _, c := range s.changes {
			s.apply(c)
		}
	}
}

// setCookie sets the session cookie on w; an empty value deletes it.
func (m *Manager) setCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	c := &http.Cookie{
		Name:     m.cfg.CookieName,
		Value:    value,
		Path:     m.cfg.CookiePath,
		Domain:   m.cfg.CookieDomain,
		HttpOnly: true,
		Secure:   m.secure(r),
		SameSite: m.cfg.SameSite,
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires.UTC()
	}
	h := w.Header()
	h.Add("Set-Cookie", c.String())
	h.Add("Vary", "Cookie")
	// A shared cache must not hand this cookie to anyone else (RFC 9111
	// section 5.2.2.4: no-cache with a field name).
	h.Add("Cache-Control", `no-cache="Set-Cookie"`)
}
