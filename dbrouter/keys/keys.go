// Package keys makes primary keys that never collide across shards or
// primaries, without asking a central server: time-ordered 64-bit IDs that
// carry the node (or shard) that made them (Snowflake-style), UUIDv7
// (RFC 9562), and per-node integer sequences with an increment and offset
// (MySQL's auto_increment_increment / auto_increment_offset) for engines and
// schemas that want plain integers.
//
// The lecture's multi-primary trap, two users getting the same primary key
// on two nodes, cannot happen with any of them: two generators with
// distinct node numbers share no value.
package keys

import "errors"

// Errors returned by the constructors and parsers, matched with errors.Is.
var (
	// ErrBadConfig: a generator was given an invalid Config.
	ErrBadConfig = errors.New("keys: invalid config")
	// ErrBadUUID: a UUID string could not be parsed.
	ErrBadUUID = errors.New("keys: bad UUID")
)
