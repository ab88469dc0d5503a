package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Codec turns a whole session into a cookie value and back: the client-side
// store. session/cookiestore is the signed (and optionally encrypted) one;
// session/flask reads and writes Flask's cookies.
type Codec interface {
	// Encode returns the cookie value for d under the cookie name, or an
	// error wrapping ErrTooLarge when it does not fit.
	Encode(name string, d *Data) (string, error)
	// Decode returns the session in value, or an error wrapping
	// ErrInvalidCookie for anything it refuses.
	Decode(name, value string) (Data, error)
}

// Config configures a Manager. Exactly one of Store and Codec must be set.
type Config struct {
	// Store keeps sessions on the server side; the cookie holds a token.
	Store Store
	// Codec keeps the whole session in the cookie.
	Codec Codec
	// Generations, if set, makes Logout end every session of the user,
	// replayed cookies included. It is read once per request of a
	// logged-in session.
	Generations Generations

	// CookieName is the cookie's name. If empty, "session" is used.
	CookieName string
	// CookiePath is the cookie's Path. If empty, "/" is used.
	CookiePath string
	// CookieDomain is the cookie's Domain. If empty, the cookie is host-only.
	CookieDomain string
	// SameSite is the cookie's SameSite. If zero, Lax is used.
	SameSite http.SameSite
	// Secure forces the cookie's Secure flag. If false, it is still set when
	// the request came over TLS, or from a trusted proxy (TrustedProxies)
	// that says X-Forwarded-Proto: https.
	Secure bool
	// TrustedProxies are the addresses whose X-Forwarded-Proto is believed.
	// If nil, loopback (127.0.0.0/8 and ::1), where scaleout's balancer runs
	// in a one-machine setup.
	TrustedProxies []netip.Prefix

	// IdleTimeout ends a session that has had no request for this long.
	// If zero, 30 minutes is used.
	IdleTimeout time.Duration
	// Lifetime ends a session this long after it began, however active.
	// If zero, 24 hours is used.
	Lifetime time.Duration

	// Logger receives refused cookies (at debug level) and store errors.
	// If nil, nothing is logged.
	Logger *slog.Logger
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
	// ErrorHandler answers a request whose session could not be loaded or
	// saved (the store failed, or the session outgrew its cookie). If nil,
	// it answers 500 Internal Server Error.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// Manager loads and saves sessions. It is safe for concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	trusted []netip.Prefix
	// touchEvery is how stale Seen may get before a request that changed
	// nothing saves the session anyway, to keep the idle timeout moving.
	touchEvery time.Duration
}

// maxSaveAttempts bounds the reload-and-replay loop on ErrConflict.
const maxSaveAttempts = 8

// New returns a Manager for cfg, or an error naming what is wrong with it.
func New(cfg Config) (*Manager, error) {
	if (cfg.Store == nil) == (cfg.Codec == nil) {
		return nil, errors.New("session: config: set exactly one of Store and Codec")
	}
	if cfg.IdleTimeout < 0 || cfg.Lifetime < 0 {
		return nil, fmt.Errorf("session: config: negative IdleTimeout %v or Lifetime %v", cfg.IdleTimeout, cfg.Lifetime)
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "session"
	}
	if !validCookieName(cfg.CookieName) {
		return nil, fmt.Errorf("session: config: invalid CookieName %q", cfg.CookieName)
	}
	if cfg.CookiePath == "" {
		cfg.CookiePath = "/"
	}
	if cfg.SameSite == 0 {
		cfg.SameSite = http.SameSiteLaxMode
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, trusted: cfg.TrustedProxies}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.trusted == nil {
		m.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	m.touchEvery = min(cfg.IdleTimeout/10, time.Minute)
	return m, nil
}

func validCookieName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == '=' || c == ';' || c == ',' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Load reads the request's session. A missing, refused, expired or revoked
// session gives a fresh empty one, never an error; errors come only from the
// Store or Generations.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	now := m.cfg.Now().Truncate(time.Second)
	s := &Session{now: now, data: Data{Created: now, Seen: now}}
	c, err := r.Cookie(m.cfg.CookieName)
	if err != nil || c.Value == "" {
		return s, nil
	}
	d, token, version, ok, err := m.read(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	if ok {
		ok, err = m.valid(r.Context(), &d, now)
		if err != nil {
			return nil, err
		}
	}
	if !ok {
		if token != "" {
			s.stale = append(s.stale, HashToken(token))
		}
		s.clearCookie = true
		return s, nil
	}
	s.data, s.token, s.version = d, token, version
	s.touched = now.Sub(d.Seen) >= m.touchEvery
	s.data.Seen = now
	return s, nil
}

// read decodes the cookie value into a session: through the Codec, or as a
// token looked up in the Store.
func (m *Manager) read(ctx context.Context, value string) (d Data, token string, version int64, ok bool, err error) {
	if m.cfg.Codec != nil {
		d, err := m.cfg.Codec.Decode(m.cfg.CookieName, value)
		if err != nil {
			m.log.Debug("session cookie refused", "err", err)
			return Data{}, "", 0, false, nil
		}
		return d, "", 0, true, nil
	}
	if !validToken(value) {
		m.log.Debug("session token refused", "len", len(value))
		return Data{}, "", 0, false, nil
	}
	e, found, err := m.cfg.Store.Load(ctx, HashToken(value))
	if err != nil || !found {
		return Data{}, "", 0, false, err
	}
	if d, err = ParseData(e.Data); err != nil {
		m.log.Warn("stored session unreadable", "err", err)
		return Data{}, value, 0, false, nil
	}
	return d, value, e.Version, true, nil
}

// valid applies the idle timeout, the absolute lifetime and revocation.
func (m *Manager) valid(ctx context.Context, d *Data, now time.Time) (bool, error) {
	if now.Sub(d.Created) >= m.cfg.Lifetime || now.Sub(d.Seen) >= m.cfg.IdleTimeout || d.Seen.After(now.Add(time.Minute)) {
		return false, nil
	}
	if d.User == "" || m.cfg.Generations == nil {
		return true, nil
	}
	g, err := m.cfg.Generations.Generation(ctx, d.User)
	if err != nil {
		return false, fmt.Errorf("session generation of user: %w", err)
	}
	return g == d.Gen, nil
}

// tokenLen is the length of a token: 32 random bytes in unpadded base64url.
const tokenLen = 43

func newToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validToken(t string) bool {
	if len(t) != tokenLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Login records userID as the session's user, with the user's current
// revocation generation, and renews the token (against session fixation).
func (m *Manager) Login(ctx context.Context, s *Session, userID string) error {
	var gen int64
	if m.cfg.Generations != nil {
		g, err := m.cfg.Generations.Generation(ctx, userID)
		if err != nil {
			return fmt.Errorf("session login: %w", err)
		}
		gen = g
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.User, s.data.Gen = userID, gen
	s.renew, s.modified, s.destroyed = true, true, false
	return nil
}

// Logout destroys the session and, with Config.Generations set, ends every
// other session of its user too (see the package doc, Revocation).
func (m *Manager) Logout(ctx context.Context, s *Session) error {
	if user := s.UserID(); user != "" {
		if err := m.RevokeUser(ctx, user); err != nil {
			return err
		}
	}
	s.Destroy()
	return nil
}

// RevokeUser ends every session of userID ("log out everywhere"). Without
// Config.Generations it does nothing.
func (m *Manager) RevokeUser(ctx context.Context, userID string) error {
	if m.cfg.Generations == nil {
		return nil
	}
	if _, err := m.cfg.Generations.Bump(ctx, userID); err != nil {
		return fmt.Errorf("session revoke user: %w", err)
	}
	return nil
}

// secure says whether the cookie gets the Secure flag for r.
func (m *Manager) secure(r *http.Request) bool {
	if m.cfg.Secure || r.TLS != nil {
		return true
	}
	if r.Header.Get("X-Forwarded-Proto") != "https" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range m.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
