package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"time"
)

// Store keeps sessions on the server side, shared by every app server that
// reaches it. Keys are SHA-256 hashes of the session tokens (see HashToken),
// never the tokens, so a leaked store does not hand out live cookies.
//
// Writes are compare-and-set on a version number so that two concurrent
// requests of one session cannot silently overwrite each other: Save succeeds
// only if the stored version is still the one the caller loaded. The Manager
// answers ErrConflict by reloading and replaying its changes (see Session).
//
// Implementations must be safe for concurrent use, and must pass
// sessiontest.TestStore.
type Store interface {
	// Load returns the entry stored under id, if there is one that has not
	// expired. "Not found" is (Entry{}, false, nil).
	Load(ctx context.Context, id string) (Entry, bool, error)
	// Save stores data under id with the given expiry, if the stored version
	// is prev (0 meaning: no live entry, so Save creates it); the stored
	// version becomes prev+1. Otherwise it returns ErrConflict and changes
	// nothing. The store may keep data: callers must not modify it later.
	Save(ctx context.Context, id string, data []byte, expiry time.Time, prev int64) error
	// Delete removes id; deleting a missing id is not an error.
	Delete(ctx context.Context, id string) error
}

// Entry is one stored session.
type Entry struct {
	// Data is the session's JSON (Data.AppendJSON).
	Data []byte
	// Expiry is when the store may drop the entry.
	Expiry time.Time
	// Version counts the saves of this entry, from 1.
	Version int64
}

// Cleaner is a Store that removes its expired entries when asked (stores
// whose engine expires keys by itself, like Redis, need not be one).
type Cleaner interface {
	// DeleteExpired removes entries whose expiry has passed and returns how
	// many it removed.
	DeleteExpired(ctx context.Context) (int64, error)
}

// Generations keeps one revocation counter per user, shared by all app
// servers. A session remembers its user's generation at login; bumping the
// generation ends every session of that user, including copies of a cookie
// replayed after logout. Implementations must be safe for concurrent use.
type Generations interface {
	// Generation returns userID's current generation; 0 if never bumped.
	Generation(ctx context.Context, userID string) (int64, error)
	// Bump increments userID's generation and returns the new value.
	Bump(ctx context.Context, userID string) (int64, error)
}

// HashToken returns the store id of a session token: the unpadded base64url
// SHA-256 of the token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RunCleanup calls c.DeleteExpired every interval until ctx is done, then
// returns ctx's error. The first run is jittered by up to one interval so
// that many app servers started together do not clean in step. Errors are
// passed to onErr (which may be nil) and do not stop the loop. If interval is
// zero, 5 minutes is used.
func RunCleanup(ctx context.Context, c Cleaner, interval time.Duration, onErr func(error)) error {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	timer := time.NewTimer(rand.N(interval) + 1)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		if _, err := c.DeleteExpired(ctx); err != nil && onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
		timer.Reset(interval)
	}
}
