package cookiestore_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"scaleout/session"
	"scaleout/session/cookiestore"
)

var t0 = time.Unix(1_800_000_000, 0)

func key(id string, b byte) cookiestore.Key {
	return cookiestore.Key{ID: id, Secret: []byte(strings.Repeat(string(rune(b)), 32))}
}

func mustNew(t testing.TB, cfg cookiestore.Config) *cookiestore.Codec {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	c, err := cookiestore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sample() *session.Data {
	return &session.Data{
		Values:  map[string]json.RawMessage{"user_id": json.RawMessage(`42`), "cart": json.RawMessage(`["a","b"]`)},
		Created: t0, Seen: t0, User: "42", Gen: 3,
	}
}

func TestRoundTripAndRotation(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		old := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("old", 'o')}, Encrypt: encrypt})
		rotated := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("new", 'n'), key("old", 'o')}, Encrypt: encrypt})
		retired := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("new", 'n')}, Encrypt: encrypt})

		v, err := old.Encode("session", sample())
		if err != nil {
			t.Fatal(err)
		}
		if encrypt && strings.Contains(v, "eyJ") { // base64 of `{"`
			t.Errorf("encrypted value shows JSON: %q", v)
		}
		d, err := rotated.Decode("session", v)
		if err != nil {
			t.Fatalf("encrypt=%v: a value from the old key is refused after rotation: %v", encrypt, err)
		}
		if string(d.Values["cart"]) != `["a","b"]` || d.User != "42" || d.Gen != 3 || !d.Created.Equal(t0) {
			t.Errorf("round trip = %+v", d)
		}
		nv, _ := rotated.Encode("session", &d)
		if !strings.HasPrefix(nv, "new.") {
			t.Errorf("rotated codec signs with %q, want the newest key", nv[:4])
		}
		if _, err := retired.Decode("session", v); !errors.Is(err, session.ErrInvalidCookie) {
			t.Errorf("value of a retired key: err %v, want ErrInvalidCookie", err)
		}
	}
}

func TestRefused(t *testing.T) {
	c := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}})
	good, _ := c.Encode("session", sample())
	kid, rest, _ := strings.Cut(good, ".")
	payload, mac, _ := strings.Cut(rest, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	later := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}, Now: func() time.Time { return t0.Add(25 * time.Hour) }})
	earlier := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}, Now: func() time.Time { return t0.Add(-time.Hour) }})
	wrongKey := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'b')}})
	sealed := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}, Encrypt: true})
	sealedValue, _ := sealed.Encode("session", sample())
	tests := []struct {
		name  string
		codec *cookiestore.Codec
		value string
	}{
		{"tampered payload", c, kid + "." + flip(payload, 20) + "." + mac},
		{"tampered mac", c, kid + "." + payload + "." + flip(mac, 5)},
		{"truncated", c, good[:len(good)-3]},
		{"no mac", c, kid + "." + payload},
		{"empty", c, ""},
		{"unknown kid", c, "k2." + payload + "." + mac},
		{"expired", later, good},
		{"from the future", earlier, good},
		{"wrong key", wrongKey, good},
		{"signed value to encrypting codec", sealed, good},
		{"sealed value to signing codec", c, sealedValue},
		{"tampered seal", sealed, flip(sealedValue, 10)},
		{"oversized", c, good + strings.Repeat("A", 5000)},
		{"garbage", c, "....."},
	}
	for _, tc := range tests {
		if _, err := tc.codec.Decode("session", tc.value); !errors.Is(err, session.ErrInvalidCookie) {
			t.Errorf("%s: err = %v, want ErrInvalidCookie", tc.name, err)
		}
	}
	if _, err := c.Decode("other", good); !errors.Is(err, session.ErrInvalidCookie) {
		t.Errorf("value moved to another cookie name: err %v, want ErrInvalidCookie", err)
	}
}

func TestTooLarge(t *testing.T) {
	c := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}})
	d := sample()
	d.Values["blob"], _ = json.Marshal(strings.Repeat("x", 4000))
	_, err := c.Encode("session", d)
	if !errors.Is(err, session.ErrTooLarge) || !strings.Contains(err.Error(), "4096") {
		t.Errorf("Encode of 4 KB = %v, want ErrTooLarge naming the limit", err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  cookiestore.Config
		want string
	}{
		{"no keys", cookiestore.Config{}, "no Keys"},
		{"short secret", cookiestore.Config{Keys: []cookiestore.Key{{ID: "k", Secret: []byte("short")}}}, "at least 32"},
		{"bad id", cookiestore.Config{Keys: []cookiestore.Key{{ID: "a.b", Secret: make([]byte, 32)}}}, "id"},
		{"duplicate id", cookiestore.Config{Keys: []cookiestore.Key{key("k", 'a'), key("k", 'b')}}, "duplicate"},
	}
	for _, tc := range tests {
		if _, err := cookiestore.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// TestBadCookiesGetFreshSession sends every kind of refused cookie through a
// Manager: each request goes on with a fresh empty session, never a 500, and
// the browser is told to drop the bad cookie.
func TestBadCookiesGetFreshSession(t *testing.T) {
	c := mustNew(t, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}})
	m, err := session.New(session.Config{Codec: c, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys := session.FromContext(r.Context()).Keys(); len(keys) != 0 {
			t.Errorf("refused cookie gave keys %v", keys)
		}
	}))
	good, _ := c.Encode("session", sample())
	for _, v := range []string{good[:len(good)/2], good + "x", "k1." + strings.Repeat("A", 4000), "\x00\xff"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "session="+v)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("cookie %.20q: status %d, want 200", v, w.Code)
		}
		if sc := w.Header().Get("Set-Cookie"); r.Header.Get("Cookie") != "" && len(v) < 4000 && !strings.Contains(sc, "Max-Age=0") {
			// A cookie that net/http could parse is deleted.
			if _, err := r.Cookie("session"); err == nil {
				t.Errorf("cookie %.20q: Set-Cookie %q, want it deleted", v, sc)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := mustNew(f, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}})
	e := mustNew(f, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}, Encrypt: true})
	good, _ := c.Encode("session", sample())
	sealed, _ := e.Encode("session", sample())
	for _, s := range []string{good, sealed, "", ".", "k1..", "k1.AAAAAAAAAAA.", good[:40]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, codec := range []*cookiestore.Codec{c, e} {
			d, err := codec.Decode("session", v)
			if err != nil {
				if !errors.Is(err, session.ErrInvalidCookie) {
					t.Fatalf("Decode(%q) error %v does not wrap ErrInvalidCookie", v, err)
				}
				continue
			}
			// Whatever decodes must encode again and decode to the same.
			v2, err := codec.Encode("session", &d)
			if err != nil {
				continue // may be too large once re-encoded
			}
			if _, err := codec.Decode("session", v2); err != nil {
				t.Fatalf("re-encoded value refused: %v", err)
			}
		}
	})
}

func BenchmarkEncodeDecode(b *testing.B) {
	for _, encrypt := range []bool{false, true} {
		name := "signed"
		if encrypt {
			name = "encrypted"
		}
		b.Run(name, func(b *testing.B) {
			c := mustNew(b, cookiestore.Config{Keys: []cookiestore.Key{key("k1", 'a')}, Encrypt: encrypt})
			d := sample()
			b.ReportAllocs()
			threadCPU(b, func() {
				for b.Loop() {
					v, err := c.Encode("session", d)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.Decode("session", v); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkPeerJSONHMAC is the usual way to do the same work, for a ratio
// that holds on a loaded machine: encoding/json for the payload and a fresh
// HMAC per call.
func BenchmarkPeerJSONHMAC(b *testing.B) {
	secret := make([]byte, 32)
	d := sample()
	type wire struct {
		C, S int64
		U    string
		G    int64
		V    map[string]json.RawMessage
	}
	b.ReportAllocs()
	threadCPU(b, func() { peerLoop(b, secret, d) })
}

func peerLoop(b *testing.B, secret []byte, d *session.Data) {
	type wire struct {
		C, S int64
		U    string
		G    int64
		V    map[string]json.RawMessage
	}
	for b.Loop() {
		payload, _ := json.Marshal(wire{d.Created.Unix(), d.Seen.Unix(), d.User, d.Gen, d.Values})
		m := hmac.New(sha256.New, secret)
		m.Write(payload)
		v := base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		p, mac, _ := strings.Cut(v, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(p)
		sig, _ := base64.RawURLEncoding.DecodeString(mac)
		m2 := hmac.New(sha256.New, secret)
		m2.Write(raw)
		if !hmac.Equal(sig, m2.Sum(nil)) {
			b.Fatal("bad mac")
		}
		var w wire
		if err := json.Unmarshal(raw, &w); err != nil {
			b.Fatal(err)
		}
	}
}
