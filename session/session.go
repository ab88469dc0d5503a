// Package session keeps a user's session across requests that a load
// balancer may send to any app server, in either of the two ways that need
// no stickiness: the whole session in a signed (optionally encrypted) cookie,
// or a random token in the cookie and the session in a Store that every app
// server reaches (memory, SQLite, PostgreSQL, Redis: the subpackages).
//
// A Manager's Handler loads the session before the handler runs and saves it
// before the response's headers go out. Handlers reach it with FromContext
// and use Get, Put, Remove, and the Manager's Login, Logout, Renew and
// Destroy. The idle timeout and the absolute lifetime are enforced on the
// server side from timestamps inside the session, never from the cookie's
// own expiry alone.
//
// # Concurrent requests of one session
//
// With a server-side Store, saves are compare-and-set: when two requests of
// one session both change it, the one that saves second reloads the stored
// session and replays its own changes (each Put and Remove, key by key) onto
// it. So changes to different keys are all kept, and for one key the request
// that saves last wins. A session destroyed or renewed by one request stays
// so: the other request's changes to it are dropped and it gets a fresh
// session. With cookie sessions there is no shared copy to merge into: each
// response carries a whole cookie and the browser keeps the last one, so
// concurrent requests that write should use a Store.
//
// # Revocation
//
// A signed cookie stays valid until it expires, even after logout, unless
// something shared says otherwise. With Config.Generations set, Login records
// the user's generation in the session and Logout bumps it, so every session
// of that user (every device, every copy of a stolen cookie) is refused from
// then on.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Errors returned by this package and its stores.
var (
	// ErrConflict is returned by Store.Save when the stored version is not
	// the one the caller loaded.
	ErrConflict = errors.New("session: version conflict")
	// ErrTooLarge is returned when an encoded session does not fit a cookie.
	ErrTooLarge = errors.New("session: too large for a cookie")
	// ErrInvalidCookie is wrapped by codecs for any cookie they refuse:
	// tampered, truncated, expired, signed by an unknown key, malformed.
	ErrInvalidCookie = errors.New("session: invalid cookie")
)

// Session is one request's view of a session. It is safe for concurrent use
// by the goroutines of one request. Get it with FromContext.
type Session struct {
	// mu guards every field below.
	mu sync.Mutex
	// data is the current content.
	data Data
	// token is the server-side token ("" until one is issued, and always ""
	// with cookie sessions); version is its stored version.
	token   string
	version int64
	// now is the request's time, from Config.Now at load.
	now time.Time
	// stale are store ids to delete at commit (after Renew or Destroy).
	stale []string
	// changes are the Puts and Removes since load, replayed on conflict.
	changes []change
	// modified: something must be saved; renew: issue a new token;
	// destroyed: the session was destroyed and nothing put since;
	// touched: Seen moved enough to be worth saving; clearCookie: the
	// request brought a cookie that was refused, so tell the browser to
	// drop it.
	modified, renew, destroyed, touched, clearCookie bool
}

// change is one Put (raw != nil) or Remove (raw == nil).
type change struct {
	key string
	raw json.RawMessage
}

type ctxKey struct{}

// FromContext returns the session that Manager.Handler put in ctx, or nil if
// the request did not pass through one.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// NewContext returns a copy of ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// Get returns the value under key decoded into a T, and whether there was one
// that decodes as a T.
func Get[T any](s *Session, key string) (T, bool) {
	var v T
	s.mu.Lock()
	raw, ok := s.data.Values[key]
	s.mu.Unlock()
	if !ok || json.Unmarshal(raw, &v) != nil {
		return v, false
	}
	return v, true
}

// Put sets key to v, encoded as JSON. It fails only when v cannot be encoded.
func (s *Session) Put(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("session put %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(change{key: key, raw: raw})
	s.changes = append(s.changes, change{key: key, raw: raw})
	s.modified, s.destroyed = true, false
	return nil
}

// Remove deletes key; removing a missing key changes nothing.
func (s *Session) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data.Values[key]; !ok {
		return
	}
	s.apply(change{key: key})
	s.changes = append(s.changes, change{key: key})
	s.modified = true
}

func (s *Session) apply(c change) {
	if c.raw == nil {
		delete(s.data.Values, c.key)
		return
	}
	if s.data.Values == nil {
		s.data.Values = make(map[string]json.RawMessage)
	}
	s.data.Values[c.key] = c.raw
}

// Keys returns the session's keys, sorted.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.data.Values))
	for k := range s.data.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// UserID returns the logged-in user's id (see Manager.Login), or "".
func (s *Session) UserID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.User
}

// Created returns when the session began.
func (s *Session) Created() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.Created
}

// Renew gives the session a new token at the end of this request, keeping
// its content; the old token stops working. Call it whenever privilege
// changes (Login does) so that a token planted before login is worthless
// (session fixation).
func (s *Session) Renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renew, s.modified = true, true
}

// Destroy empties the session and ends it: its store entry is deleted and
// the browser is told to drop the cookie. Values put after Destroy start a
// new session with a new token.
func (s *Session) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.destroyLocked()
}

func (s *Session) destroyLocked() {
	if s.token != "" {
		s.stale = append(s.stale, HashToken(s.token))
	}
	s.data = Data{Created: s.now, Seen: s.now}
	s.token, s.version, s.changes = "", 0, nil
	s.modified, s.renew, s.destroyed = false, false, true
}
