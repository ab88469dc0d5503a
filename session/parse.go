package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ParseData decodes what AppendJSON wrote. The input may be untrusted (a
// cookie's payload): any problem is an error wrapping the cause, never a
// panic. The returned Values alias b, which must not be modified afterwards.
//
// It is a strict JSON parser of the one shape Data has, hand-written because
// it runs on every request: encoding/json's reflection cost most of the
// cookie codec's time. Unknown fields are skipped (after validation), so a
// newer writer can add fields. FuzzParseData checks it against encoding/json.
func ParseData(b []byte) (Data, error) {
	p := parser{b: b}
	d, err := p.data()
	if err != nil {
		return Data{}, fmt.Errorf("%w: %w at byte %d", errBadData, err, p.i)
	}
	return d, nil
}

// maxDepth bounds nesting in values, so hostile input cannot recurse deeply.
const maxDepth = 64

var (
	errSyntax  = errors.New("invalid JSON")
	errTooDeep = errors.New("JSON nested too deeply")
	errStamps  = errors.New("bad timestamps")
)

type parser struct {
	b []byte
	i int
}

func (p *parser) data() (Data, error) {
	var c, s, g int64
	var d Data
	if !p.consume('{') {
		return d, errSyntax
	}
	for first := true; ; first = false {
		if p.consume('}') {
			break
		}
		if !first && !p.consume(',') {
			return d, errSyntax
		}
		key, err := p.str()
		if err != nil || !p.consume(':') {
			return d, errSyntax
		}
		switch key {
		case "c":
			c, err = p.int()
		case "s":
			s, err = p.int()
		case "g":
			g, err = p.int()
		case "u":
			d.User, err = p.str()
		case "v":
			d.Values, err = p.values()
		default:
			_, err = p.value(0)
		}
		if err != nil {
			return d, err
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return d, errSyntax
	}
	if c <= 0 || s < c {
		return d, errStamps
	}
	d.Created, d.Seen, d.Gen = time.Unix(c, 0), time.Unix(s, 0), g
	return d, nil
}

// values parses the "v" object into raw values that alias p.b.
func (p *parser) values() (map[string]json.RawMessage, error) {
	if p.consumeLit("null") {
		return nil, nil
	}
	if !p.consume('{') {
		return nil, errSyntax
	}
	m := make(map[string]json.RawMessage, 4)
	for first := true; ; first = false {
		if p.consume('}') {
			return m, nil
		}
		if !first && !p.consume(',') {
			return nil, errSyntax
		}
		key, err := p.str()
		if err != nil || !p.consume(':') {
			return nil, errSyntax
		}
		raw, err := p.value(0)
		if err != nil {
			return nil, err
		}
		m[key] = raw
	}
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, reporting whether c was there.
func (p *parser) consume(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) consumeLit(lit string) bool {
	p.ws()
	if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// int parses a JSON integer that fits an int64.
func (p *parser) int() (int64, error) {
	p.ws()
	start := p.i
	if err := p.number(); err != nil {
		return 0, err
	}
	var n int64
	neg := false
	for _, c := range p.b[start:p.i] {
		switch {
		case c == '-':
			neg = true
		case '0' <= c && c <= '9':
			if n > (1<<62)/5 {
				return 0, errSyntax
			}
			n = n*10 + int64(c-'0')
		default:
			return 0, errSyntax // a fraction or exponent
		}
	}
	if neg {
		n = -n
	}
	return n, nil
}

// str parses a JSON string and returns its value.
func (p *parser) str() (string, error) {
	p.ws()
	start := p.i
	escaped, err := p.skipString()
	if err != nil {
		return "", err
	}
	if raw := p.b[start+1 : p.i-1]; !escaped && utf8.Valid(raw) {
		return string(raw), nil
	}
	// Escapes, or invalid UTF-8 that JSON turns into U+FFFD.
	var s string
	if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// skipString moves past a JSON string starting at p.i, reporting whether it
// held escapes.
func (p *parser) skipString() (escaped bool, err error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false, errSyntax
	}
	for p.i++; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return escaped, nil
		case c < 0x20:
			return false, errSyntax
		case c == '\\':
			escaped = true
			p.i++
			if p.i >= len(p.b) {
				return false, errSyntax
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(p.b)-p.i < 5 || !isHex(p.b[p.i+1]) || !isHex(p.b[p.i+2]) || !isHex(p.b[p.i+3]) || !isHex(p.b[p.i+4]) {
					return false, errSyntax
				}
				p.i += 4
			default:
				return false, errSyntax
			}
		}
	}
	return false, errSyntax
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// number moves past a JSON number (RFC 8259 section 6).
func (p *parser) number() error {
	b, i := p.b, p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return errSyntax
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return errSyntax
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	p.i = i
	return nil
}

// value moves past any JSON value and returns its bytes.
func (p *parser) value(depth int) (json.RawMessage, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	p.ws()
	if p.i >= len(p.b) {
		return nil, errSyntax
	}
	start := p.i
	var err error
	switch c := p.b[p.i]; {
	case c == '"':
		_, err = p.skipString()
	case c == '{':
		err = p.container('}', true, depth)
	case c == '[':
		err = p.container(']', false, depth)
	case c == 't':
		err = p.lit("true")
	case c == 'f':
		err = p.lit("false")
	case c == 'n':
		err = p.lit("null")
	default:
		err = p.number()
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(p.b[start:p.i:p.i]), nil
}

func (p *parser) lit(s string) error {
	if !p.consumeLit(s) {
		return errSyntax
	}
	return nil
}

// container moves past an object (keyed) or array whose opener is at p.i.
func (p *parser) container(end byte, keyed bool, depth int) error {
	p.i++
	for first := true; ; first = false {
		if p.consume(end) {
			return nil
		}
		if !first && !p.consume(',') {
			return errSyntax
		}
		if keyed {
			p.ws()
			if _, err := p.skipString(); err != nil || !p.consume(':') {
				return errSyntax
			}
		}
		if _, err := p.value(depth + 1); err != nil {
			return err
		}
	}
}
