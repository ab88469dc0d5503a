package respserver

import (
	"strconv"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/tidwall/redcon"
)

// handle runs one command. Errors follow Redis's wording, so clients
// classify them as Redis does ("ERR ...", "WRONGTYPE ...").
func (s *Server) handle(c redcon.Conn, cmd redcon.Command) {
	args := cmd.Args
	name := strings.ToLower(string(args[0]))
	switch name {
	case "ping":
		switch len(args) {
		case 1:
			c.WriteString("PONG")
		case 2:
			c.WriteBulk(args[1])
		default:
			wrongArgs(c, name)
		}
	case "echo":
		if len(args) != 2 {
			wrongArgs(c, name)
			return
		}
		c.WriteBulk(args[1])
	case "quit":
		c.WriteString("OK")
		_ = c.Close()
	case "select":
		if len(args) != 2 || string(args[1]) != "0" {
			c.WriteError("ERR only database 0 exists")
			return
		}
		c.WriteString("OK")
	case "client":
		c.WriteString("OK")
	case "get":
		s.get(c, args)
	case "mget":
		s.mget(c, args)
	case "set":
		s.set(c, args)
	case "del", "unlink":
		s.del(c, args)
	case "exists":
		s.exists(c, args)
	case "pttl":
		s.pttl(c, args)
	case "dbsize":
		c.WriteInt(s.kv.EstimatedSize())
	case "flushall", "flushdb":
		s.kv.InvalidateAll()
		c.WriteString("OK")
	case "publish":
		if len(args) != 3 {
			wrongArgs(c, name)
			return
		}
		c.WriteInt(s.ps.Publish(string(args[1]), string(args[2])))
	case "subscribe", "psubscribe":
		if len(args) < 2 {
			wrongArgs(c, name)
			return
		}
		for _, ch := range args[1:] {
			if name == "subscribe" {
				s.ps.Subscribe(c, string(ch))
			} else {
				s.ps.Psubscribe(c, string(ch))
			}
		}
	default:
		c.WriteError("ERR unknown command '" + trim(name) + "'")
	}
}

func wrongArgs(c redcon.Conn, name string) {
	c.WriteError("ERR wrong number of arguments for '" + trim(name) + "' command")
}

// trim keeps error messages short whatever a client sends.
func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// lookup returns key's live value.
func (s *Server) lookup(key string) (*value, bool) {
	v, ok := s.kv.GetIfPresent(key)
	if !ok || (v.expiresAt != 0 && time.Now().UnixNano() >= v.expiresAt) {
		return nil, false
	}
	return v, true
}

func (s *Server) get(c redcon.Conn, args [][]byte) {
	if len(args) != 2 {
		wrongArgs(c, "get")
		return
	}
	if v, ok := s.lookup(string(args[1])); ok {
		c.WriteBulk(v.data)
		return
	}
	c.WriteNull()
}

func (s *Server) mget(c redcon.Conn, args [][]byte) {
	if len(args) < 2 {
		wrongArgs(c, "mget")
		return
	}
	c.WriteArray(len(args) - 1)
	for _, k := range args[1:] {
		if v, ok := s.lookup(string(k)); ok {
			c.WriteBulk(v.data)
		} else {
			c.WriteNull()
		}
	}
}

// setOptions are the parsed options of SET.
type setOptions struct {
	ttl    time.Duration
	nx, xx bool
}

// parseSet parses SET's options after key and value; msg is the error to
// reply with, "" when they are valid.
func parseSet(opts [][]byte) (o setOptions, msg string) {
	for i := 0; i < len(opts); i++ {
		switch strings.ToLower(string(opts[i])) {
		case "nx":
			o.nx = true
		case "xx":
			o.xx = true
		case "ex", "px":
			if i+1 >= len(opts) || o.ttl != 0 {
				return o, "ERR syntax error"
			}
			unit := time.Millisecond
			if strings.EqualFold(string(opts[i]), "ex") {
				unit = time.Second
			}
			n, err := strconv.ParseInt(string(opts[i+1]), 10, 64)
			if err != nil || n <= 0 || n > int64(forever/unit) {
				return o, "ERR invalid expire time in 'set' command"
			}
			o.ttl = time.Duration(n) * unit
			i++
		default:
			return o, "ERR syntax error"
		}
	}
	if o.nx && o.xx {
		return o, "ERR syntax error"
	}
	return o, ""
}

func (s *Server) set(c redcon.Conn, args [][]byte) {
	if len(args) < 3 {
		wrongArgs(c, "set")
		return
	}
	o, msg := parseSet(args[3:])
	if msg != "" {
		c.WriteError(msg)
		return
	}
	nv := &value{data: append([]byte(nil), args[2]...)}
	if o.ttl > 0 {
		nv.expiresAt = time.Now().Add(o.ttl).UnixNano()
	}
	key := string(args[1])
	if !o.nx && !o.xx {
		s.kv.Set(key, nv)
		c.WriteString("OK")
		return
	}
	written := false
	s.kv.Compute(key, func(old *value, found bool) (*value, otter.ComputeOp) {
		live := found && (old.expiresAt == 0 || time.Now().UnixNano() < old.expiresAt)
		if live == o.xx {
			written = true
			return nv, otter.WriteOp
		}
		return old, otter.CancelOp
	})
	if written {
		c.WriteString("OK")
	} else {
		c.WriteNull()
	}
}

func (s *Server) del(c redcon.Conn, args [][]byte) {
	if len(args) < 2 {
		wrongArgs(c, "del")
		return
	}
	n := 0
	for _, k := range args[1:] {
		if old, ok := s.kv.Invalidate(string(k)); ok && (old.expiresAt == 0 || time.Now().UnixNano() < old.expiresAt) {
			n++
		}
	}
	c.WriteInt(n)
}

func (s *Server) exists(c redcon.Conn, args [][]byte) {
	if len(args) < 2 {
		wrongArgs(c, "exists")
		return
	}
	n := 0
	for _, k := range args[1:] {
		if _, ok := s.lookup(string(k)); ok {
			n++
		}
	}
	c.WriteInt(n)
}

func (s *Server) pttl(c redcon.Conn, args [][]byte) {
	if len(args) != 2 {
		wrongArgs(c, "pttl")
		return
	}
	v, ok := s.lookup(string(args[1]))
	switch {
	case !ok:
		c.WriteInt(-2)
	case v.expiresAt == 0:
		c.WriteInt(-1)
	default:
		c.WriteInt64(max(time.Until(time.Unix(0, v.expiresAt)).Milliseconds(), 0))
	}
}
