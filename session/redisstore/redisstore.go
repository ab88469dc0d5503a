// Package redisstore is a session.Store in Redis, through go-redis: for app
// servers on several machines. Entries expire by Redis's own key expiry
// (PEXPIREAT), so no cleanup loop is needed; compare-and-set runs as a Lua
// script, atomic on the server.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/session"
)

// Config configures a Store.
type Config struct {
	// Client is the Redis client (a *redis.Client, a cluster or ring
	// client); the caller owns and closes it. Required.
	Client redis.UniversalClient
	// Prefix starts every key: sessions are Prefix+"s:"+id and generations
	// Prefix+"g:"+user. If empty, "scaleout:session:" is used.
	Prefix string
}

// Store is a session.Store and session.Generations on Redis. It is safe for
// concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
}

// saveScript: KEYS[1] entry; ARGV: prev version, data, expiry (Unix ms).
// A missing (or expired, hence gone) key has version 0. PEXPIREAT with a
// time in the past deletes the key at once, which is what expiry means.
var saveScript = redis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', v + 1)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`)

// New returns a Store on cfg.Client.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redisstore: config: Client is nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "scaleout:session:"
	}
	return &Store{c: cfg.Client, prefix: cfg.Prefix}, nil
}

// Load returns the live entry under id.
func (s *Store) Load(ctx context.Context, id string) (session.Entry, bool, error) {
	key := s.prefix + "s:" + id
	var get *redis.SliceCmd
	var exp *redis.DurationCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HMGet(ctx, key, "d", "v")
		exp = p.PExpireTime(ctx, key)
		return nil
	})
	if err != nil {
		return session.Entry{}, false, fmt.Errorf("redisstore: load: %w", err)
	}
	vals := get.Val()
	d, ok1 := vals[0].(string)
	v, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return session.Entry{}, false, nil
	}
	ver, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return session.Entry{}, false, fmt.Errorf("redisstore: load: bad version %q", v)
	}
	e := session.Entry{Data: []byte(d), Version: ver}
	if ms := exp.Val(); ms > 0 {
		e.Expiry = time.UnixMilli(int64(ms / time.Millisecond))
	}
	return e, true, nil
}

// Save stores data under id if the live version is prev.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiry time.Time, prev int64) error {
	n, err := saveScript.Run(ctx, s.c, []string{s.prefix + "s:" + id}, prev, data, expiry.UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("redisstore: save: %w", err)
	}
	if n != 1 {
		return session.ErrConflict
	}
	return nil
}

// Delete removes id.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.c.Del(ctx, s.prefix+"s:"+id).Err(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	return nil
}

// Generation returns userID's revocation generation.
func (s *Store) Generation(ctx context.Context, userID string) (int64, error) {
	g, err := s.c.Get(ctx, s.prefix+"g:"+userID).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisstore: generation: %w", err)
	}
	return g, nil
}

// Bump increments userID's revocation generation.
func (s *Store) Bump(ctx context.Context, userID string) (int64, error) {
	g, err := s.c.Incr(ctx, s.prefix+"g:"+userID).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: bump generation: %w", err)
	}
	return g, nil
}
