// Package health keeps scaleout's pool honest about which app servers are
// alive. It has three parts, each usable alone:
//
//   - Registry, on the balancer, receives pushed heartbeats (POST
//     /api/heartbeat), registers unknown members at once, and keeps a lease
//     per member: a member that stops sending goes down when its lease runs
//     out and is forgotten after a longer grace.
//   - Sender, imported by app servers written in Go, pushes a heartbeat to
//     every balancer at a jittered interval, carrying the in-flight count
//     its Middleware measures, and says "leaving" when the app shuts down.
//   - Prober actively checks each target's health path and reports
//     transitions with rise/fall hysteresis, as HAProxy's checks do.
//
// The package never imports the balancer: it declares what it drives (Pool,
// StatusSetter, TargetSource) and the balancer's owner adapts to them.
//
// # Heartbeat wire format
//
// A heartbeat is a POST of one JSON object with Content-Type
// application/json and an "Authorization: Bearer <token>" header:
//
//	{
//	  "id":          "app-1",                  // 1-128 bytes of [A-Za-z0-9._:-]
//	  "url":         "http://10.0.0.5:8081",   // http or https, host and explicit port, no path
//	  "state":       "ready",                  // "ready", "draining" or "leaving"
//	  "in_flight":   12,                       // requests being served now, >= 0
//	  "capacity":    64,                       // requests it can serve at once; 0 = unknown
//	  "interval_ms": 1000,                     // how often it sends; sets the lease
//	  "weight":      1,                        // optional: relative share, 0-1000; 0 keeps the current one
//	  "seq":         1732574400000000001       // optional: increasing per sender; older ones are ignored
//	}
//
// Unknown fields, trailing data, negative numbers and out-of-range values
// are refused with 400 and a message naming the field. Field names match
// case-insensitively, as encoding/json matches them.
package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"
)

// MemberState is a pool member's place in rotation as health sees it.
type MemberState string

// The states health moves members between. StateLeaving is only ever sent
// by a member (it asks to be removed); the pool never holds it.
const (
	StateReady    MemberState = "ready"
	StateDraining MemberState = "draining"
	StateDown     MemberState = "down"
	StateLeaving  MemberState = "leaving"
)

// Member is what a heartbeat tells the pool about one app server.
type Member struct {
	ID  string
	URL string
	// Weight is the member's relative share; 0 means keep the current
	// weight (1 for a new member).
	Weight int
	// Capacity is how many requests the member says it can serve at once;
	// 0 means unknown.
	Capacity int
	// InFlight is how many requests the member says it is serving.
	InFlight int
}

// Pool is the balancer's pool as health sees it. The Registry calls it
// while holding its own lock, so implementations must not call back into
// the Registry; they must be safe for concurrent use with the rest of the
// balancer.
type Pool interface {
	// Upsert adds a member, or updates the URL, weight, capacity and
	// in-flight count of one already known. A new member is ready.
	Upsert(m Member) error
	// SetState moves a member to ready, draining or down (down is out of
	// rotation but kept).
	SetState(id string, s MemberState) error
	// Remove forgets a member.
	Remove(id string) error
}

// Target is one thing a Prober checks: a pool member's ID and base URL.
type Target struct {
	ID  string
	URL string
}

// TargetSource lists what a Prober should check. It is called once per
// round and must be safe for concurrent use; the slice is the caller's.
type TargetSource interface {
	Targets() []Target
}

// StatusSetter receives a Prober's verdicts, only on transitions (the seam
// Traefik's health checker uses). Implementations must be safe for
// concurrent use.
type StatusSetter interface {
	SetHealthy(id string, healthy bool)
}

// Errors the package returns; match them with errors.Is.
var (
	// ErrBadHeartbeat wraps every reason a heartbeat body is refused.
	ErrBadHeartbeat = errors.New("bad heartbeat")
	// ErrConfig wraps every invalid Config field.
	ErrConfig = errors.New("invalid config")
	// ErrRefused is returned by a Sender when a balancer answers with a
	// 4xx status: retrying the same heartbeat will not help.
	ErrRefused = errors.New("heartbeat refused")
)

// Heartbeat is one decoded and validated heartbeat. Its JSON form is the
// wire format described in the package documentation.
type Heartbeat struct {
	ID         string      `json:"id"`
	URL        string      `json:"url"`
	State      MemberState `json:"state"`
	InFlight   int64       `json:"in_flight"`
	Capacity   int64       `json:"capacity"`
	IntervalMS int64       `json:"interval_ms"`
	Weight     int64       `json:"weight,omitempty"`
	Seq        uint64      `json:"seq,omitempty"`
}

// Interval returns the heartbeat's declared sending interval.
func (h *Heartbeat) Interval() time.Duration {
	return time.Duration(h.IntervalMS) * time.Millisecond
}

// MaxIDLen is the longest member ID accepted, in bytes.
const MaxIDLen = 128

// MaxWeight is the largest weight a heartbeat may carry (the balancer's
// bound too).
const MaxWeight = 1000

// Further bounds on heartbeat values. The interval bounds are the defaults
// of RegistryConfig.MinInterval and MaxInterval.
const (
	maxCount           = 1 << 30
	defaultMinInterval = 50 * time.Millisecond
	defaultMaxInterval = time.Minute
)

// ParseHeartbeat decodes and validates one heartbeat body, refusing unknown
// fields, trailing data and out-of-range values with an error wrapping
// ErrBadHeartbeat. Intervals are checked against the package defaults
// (50ms to 1m); a Registry applies its own bounds. data is not retained.
func ParseHeartbeat(data []byte) (Heartbeat, error) {
	return parseHeartbeat(data, defaultMinInterval, defaultMaxInterval)
}

func parseHeartbeat(data []byte, minIv, maxIv time.Duration) (Heartbeat, error) {
	h, _, err := decodeHeartbeat(data, minIv, maxIv)
	return h, err
}

// decodeHeartbeat is ParseHeartbeat that also says why it refused: reason
// is "malformed" (not one JSON object of the right shape) or "invalid" (a
// value out of range).
func decodeHeartbeat(data []byte, minIv, maxIv time.Duration) (h Heartbeat, reason string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Heartbeat{}, reasonMalformed, fmt.Errorf("%w: JSON: %s", ErrBadHeartbeat, jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Heartbeat{}, reasonMalformed, fmt.Errorf("%w: trailing data after the JSON object", ErrBadHeartbeat)
	}
	if err := h.validate(minIv, maxIv); err != nil {
		return Heartbeat{}, reasonInvalid, fmt.Errorf("%w: %w", ErrBadHeartbeat, err)
	}
	return h, "", nil
}

// jsonMessage turns encoding/json's errors into a message that names the
// field and never echoes large input.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated object"
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return msg
}

func (h *Heartbeat) validate(minIv, maxIv time.Duration) error {
	if err := ValidateID(h.ID); err != nil {
		return err
	}
	if err := ValidateURL(h.URL); err != nil {
		return err
	}
	switch h.State {
	case StateReady, StateDraining, StateLeaving:
	case "":
		return errors.New(`field "state" missing: want "ready", "draining" or "leaving"`)
	default:
		return fmt.Errorf(`field "state" %.40q: want "ready", "draining" or "leaving"`, string(h.State))
	}
	for _, f := range []struct {
		name string
		v    int64
		max  int64
	}{{"in_flight", h.InFlight, maxCount}, {"capacity", h.Capacity, maxCount}, {"weight", h.Weight, MaxWeight}} {
		if f.v < 0 || f.v > f.max {
			return fmt.Errorf("field %q is %d: want 0 to %d", f.name, f.v, f.max)
		}
	}
	if iv := h.Interval(); h.IntervalMS <= 0 || iv < minIv || iv > maxIv {
		return fmt.Errorf("field \"interval_ms\" is %d: want %d to %d", h.IntervalMS, minIv.Milliseconds(), maxIv.Milliseconds())
	}
	return nil
}

// ValidateID reports whether id can name a member: 1 to 128 bytes of
// ASCII letters, digits, '.', '_', ':' and '-'.
func ValidateID(id string) error {
	if id == "" {
		return errors.New(`field "id" missing or empty`)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf(`field "id" is %d bytes long: want at most %d`, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf(`field "id" has byte %q at %d: want letters, digits, '.', '_', ':' or '-'`, id[i], i)
		}
	}
	return nil
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// ValidateURL reports whether raw is a usable member address: http or
// https, a host and an explicit port, and nothing else (no user info,
// path, query or fragment).
func ValidateURL(raw string) error {
	if raw == "" {
		return errors.New(`field "url" missing or empty`)
	}
	if len(raw) > 512 {
		return fmt.Errorf(`field "url" is %d bytes long: want at most 512`, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf(`field "url" %.80q: %w`, raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf(`field "url" %.80q: scheme must be http or https`, raw)
	}
	if u.Hostname() == "" || u.Port() == "" || u.Opaque != "" {
		return fmt.Errorf(`field "url" %.80q: want scheme://host:port`, raw)
	}
	if port, err := strconv.Atoi(u.Port()); err != nil || port < 1 || port > 65535 {
		return fmt.Errorf(`field "url" %.80q: port must be 1 to 65535`, raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.User != nil || u.Fragment != "" {
		return fmt.Errorf(`field "url" %.80q: only scheme, host and port are allowed`, raw)
	}
	return nil
}

// IDFromURL derives a member ID from its URL: its host and port, with the
// brackets of an IPv6 literal dropped ("http://[::1]:8081" gives "::1:8081").
func IDFromURL(raw string) (string, error) {
	if err := ValidateURL(raw); err != nil {
		return "", err
	}
	u, _ := url.Parse(raw)
	return u.Hostname() + ":" + u.Port(), nil
}
