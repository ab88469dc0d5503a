package session

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// Data is the whole content of one session: what a server-side Store keeps
// (encoded with AppendJSON) and what a client-side Codec puts in the cookie.
type Data struct {
	// Values are the application's entries, each held as JSON so that a
	// cookie or a store never carries gob or other code-bearing encodings.
	Values map[string]json.RawMessage
	// Created is when the session began; the absolute lifetime counts from it.
	Created time.Time
	// Seen is the last request that refreshed the session; the idle timeout
	// counts from it. Both times have one-second precision.
	Seen time.Time
	// User is the logged-in user's id, set by Manager.Login; "" if none.
	User string
	// Gen is the user's revocation generation at login (see Generations).
	Gen int64
}

// dataJSON is Data's wire form: short names keep cookies small.
type dataJSON struct {
	C int64                      `json:"c"`
	S int64                      `json:"s"`
	U string                     `json:"u,omitempty"`
	G int64                      `json:"g,omitempty"`
	V map[string]json.RawMessage `json:"v,omitempty"`
}

// AppendJSON appends d's JSON encoding to b. Values must hold valid JSON (Put
// guarantees it). It is hand-written because it is on every request's path:
// encoding/json would re-validate every value.
func (d *Data) AppendJSON(b []byte) []byte {
	b = append(b, `{"c":`...)
	b = strconv.AppendInt(b, d.Created.Unix(), 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, d.Seen.Unix(), 10)
	if d.User != "" {
		b = append(b, `,"u":`...)
		b = appendJSONString(b, d.User)
	}
	if d.Gen != 0 {
		b = append(b, `,"g":`...)
		b = strconv.AppendInt(b, d.Gen, 10)
	}
	if len(d.Values) > 0 {
		b = append(b, `,"v":{`...)
		first := true
		for k, v := range d.Values {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = append(b, v...)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, fast for plain ASCII.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// errBadData reports session data that does not parse.
var errBadData = errors.New("malformed session data")
