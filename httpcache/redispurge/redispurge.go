// Package redispurge carries httpcache purge orders to every balancer that
// shares a Redis pub/sub channel. Each balancer runs a Purger in front of
// its own cache: a purge given to any of them is applied to its own cache,
// published on the channel, applied by every other Purger subscribed to
// it, and confirmed back, so that when Purge returns every subscribed
// cache has dropped the entries and the next request anywhere misses.
package redispurge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/httpcache"
)

// Errors returned by this package, matched with errors.Is.
var (
	// ErrBadConfig is returned by New for an invalid Config.
	ErrBadConfig = errors.New("invalid redispurge config")
	// ErrUnconfirmed is returned by Purge when the order was applied
	// locally but not every subscribed balancer confirmed it in time (or
	// it could not be published at all).
	ErrUnconfirmed = errors.New("purge not confirmed by every balancer")
	// ErrBadMessage is returned by DecodeMessage for a message that is
	// not a purge order.
	ErrBadMessage = errors.New("bad purge message")
)

// Config configures a Purger.
type Config struct {
	// Client is the Redis client used to publish, subscribe and confirm.
	// Required; the caller owns it and closes it after Run returns.
	Client *redis.Client
	// Local is this balancer's cache (an *httpcache.Shared). Required.
	Local httpcache.Purger
	// Channel is the pub/sub channel; balancers sharing it purge
	// together. If empty, "scaleout:httpcache:purge" is used.
	Channel string
	// ConfirmTimeout bounds how long Purge waits for every subscribed
	// balancer to confirm. If zero, 5s is used.
	ConfirmTimeout time.Duration
	// Logger receives subscription problems and bad messages. If nil,
	// nothing is logged.
	Logger *slog.Logger
}

// Purger is an httpcache.Purger that fans purge orders out over Redis
// pub/sub. It is safe for concurrent use. Create it with New and start Run,
// which applies the orders other balancers publish.
type Purger struct {
	c       *redis.Client
	local   httpcache.Purger
	channel string
	timeout time.Duration
	log     *slog.Logger
	id      string // this Purger's instance id, to skip its own messages

	subscribed atomic.Bool
}

// New returns a Purger configured by cfg; see Config for the defaults. It
// starts no goroutines and does not contact Redis.
func New(cfg Config) (*Purger, error) {
	if cfg.Client == nil || cfg.Local == nil {
		return nil, fmt.Errorf("Client and Local are required: %w", ErrBadConfig)
	}
	if cfg.ConfirmTimeout < 0 {
		return nil, fmt.Errorf("negative ConfirmTimeout %v: %w", cfg.ConfirmTimeout, ErrBadConfig)
	}
	p := &Purger{c: cfg.Client, local: cfg.Local, channel: cfg.Channel, timeout: cfg.ConfirmTimeout, log: cfg.Logger}
	if p.channel == "" {
		p.channel = "scaleout:httpcache:purge"
	}
	if p.timeout == 0 {
		p.timeout = 5 * time.Second
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("instance id: %w", err)
	}
	p.id = hex.EncodeToString(b[:])
	return p, nil
}

// Message is one purge order as published on the channel: who sent it,
// the id its confirmations are pushed under, and the order.
type Message struct {
	ID    string          `json:"id"`
	From  string          `json:"from"`
	Order httpcache.Purge `json:"order"`
}

// maxMessage bounds a message's size, as the admin API bounds its body.
const maxMessage = 1 << 20

// DecodeMessage parses a message from the channel. Anything else on the
// channel (another program's traffic, a truncated write) gets an error
// wrapping ErrBadMessage that says what is wrong.
func DecodeMessage(payload string) (Message, error) {
	var m Message
	if len(payload) > maxMessage {
		return m, fmt.Errorf("%d bytes, more than %d: %w", len(payload), maxMessage, ErrBadMessage)
	}
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return m, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if m.ID == "" || m.From == "" {
		return m, fmt.Errorf("no id or sender: %w", ErrBadMessage)
	}
	if len(m.Order.URLs) == 0 && len(m.Order.Tags) == 0 {
		return m, fmt.Errorf("no urls and no tags: %w", ErrBadMessage)
	}
	return m, nil
}

// ackKey is the list every receiver of message id pushes its count to.
func (p *Purger) ackKey(id string) string { return p.channel + ":ack:" + id }

// Purge applies order to the local cache, then publishes it and waits
// until every balancer subscribed to the channel has applied it to its
// own cache. It returns the entries removed by all of them. A bad URL
// fails the order (httpcache.ErrBadPurge) before anything is removed or
// published. When Redis cannot be reached or some balancer does not
// confirm within ConfirmTimeout, the local purge stands and the error
// wraps ErrUnconfirmed.
func (p *Purger) Purge(ctx context.Context, order httpcache.Purge) (int, error) {
	n, err := p.local.Purge(ctx, order)
	if err != nil {
		return n, err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return n, fmt.Errorf("message id: %w", err)
	}
	msg := Message{ID: hex.EncodeToString(b[:]), From: p.id, Order: order}
	payload, err := json.Marshal(msg)
	if err != nil {
		return n, fmt.Errorf("encode purge: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	receivers, err := p.c.Publish(ctx, p.channel, payload).Result()
	if err != nil {
		return n, fmt.Errorf("publish purge on %s: %w: %w", p.channel, ErrUnconfirmed, err)
	}
	key := p.ackKey(msg.ID)
	defer p.c.Del(context.WithoutCancel(ctx), key)
	for got := int64(0); got < receivers; got++ {
		wait := time.Until(deadline(ctx))
		if wait <= 0 {
			return n, fmt.Errorf("%d of %d balancers confirmed: %w", got, receivers, ErrUnconfirmed)
		}
		kv, err := p.c.BLPop(ctx, max(wait, 10*time.Millisecond), key).Result()
		if err != nil {
			return n, fmt.Errorf("%d of %d balancers confirmed: %w: %w", got, receivers, ErrUnconfirmed, err)
		}
		if m, err := strconv.Atoi(kv[1]); err == nil && m > 0 {
			n += m
		}
	}
	return n, nil
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// Run subscribes to the channel and applies every other balancer's purge
// orders to the local cache, confirming each, until ctx is done; then it
// returns nil. It never gives up on Redis: while Redis is away it retries
// (a balancer keeps serving without its purge channel), and orders
// published meanwhile are lost to this balancer, since pub/sub does not
// keep them; their senders see ErrUnconfirmed.
func (p *Purger) Run(ctx context.Context) error {
	sub := p.c.Subscribe(ctx, p.channel)
	defer sub.Close()
	// A blocked Receive does not watch ctx; closing the subscription
	// ends it.
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	for {
		_, err := sub.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			break
		}
		p.log.Warn("subscribing to the purge channel failed; retrying", "channel", p.channel, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	p.subscribed.Store(true)
	defer p.subscribed.Store(false)
	for {
		v, err := sub.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// The next Receive reconnects and resubscribes.
			p.log.Warn("purge channel receive failed; retrying", "channel", p.channel, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch v := v.(type) {
		case *redis.Message:
			p.apply(ctx, v.Payload)
		case *redis.Subscription:
			p.log.Warn("purge channel resubscribed: purges published while it was down were missed", "channel", p.channel)
		}
	}
}

// apply carries out one message and confirms it, even one this Purger
// sent (it counts among PUBLISH's receivers but was applied already).
func (p *Purger) apply(ctx context.Context, payload string) {
	m, err := DecodeMessage(payload)
	if err != nil {
		p.log.Warn("ignoring message on purge channel", "channel", p.channel, "err", err)
		return
	}
	n := 0
	if m.From != p.id {
		if n, err = p.local.Purge(ctx, m.Order); err != nil {
			// The sender validated the order; an error here is this
			// cache's, and the confirmation still goes back.
			p.log.Warn("purge from another balancer failed", "id", m.ID, "err", err)
		}
	}
	key := p.ackKey(m.ID)
	pipe := p.c.Pipeline()
	pipe.RPush(ctx, key, n)
	pipe.Expire(ctx, key, time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		p.log.Warn("confirming purge failed", "id", m.ID, "err", err)
	}
}

// Subscribed reports whether Run holds its subscription. Safe for
// concurrent use.
func (p *Purger) Subscribed() bool { return p.subscribed.Load() }

var _ httpcache.Purger = (*Purger)(nil)
