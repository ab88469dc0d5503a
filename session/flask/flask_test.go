package flask_test

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"scaleout/session"
	"scaleout/session/flask"
)

// vector is one cookie written by Flask itself (testdata/gen_vectors.py).
type vector struct {
	Name, Secret, Cookie string
	JSON                 map[string]json.RawMessage
	Now                  int64
}

func vectors(t *testing.T) []vector {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func codec(t testing.TB, now int64, secrets ...string) *flask.Codec {
	t.Helper()
	cfg := flask.Config{Now: func() time.Time { return time.Unix(now, 0) }, UserKey: "user_id"}
	for _, s := range secrets {
		cfg.Secrets = append(cfg.Secrets, []byte(s))
	}
	c, err := flask.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func compact(t *testing.T, raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFlaskVectors(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			c := codec(t, v.Now+60, v.Secret)
			d, err := c.Decode("session", v.Cookie)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(d.Values) != len(v.JSON) {
				t.Errorf("got %d keys, want %d", len(d.Values), len(v.JSON))
			}
			for k, want := range v.JSON {
				if got := d.Values[k]; compact(t, got) != compact(t, want) {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
			if !d.Created.Equal(time.Unix(v.Now, 0)) {
				t.Errorf("created %v, want the signing time", d.Created)
			}
			// The fallback list verifies it too; a wrong key does not.
			if _, err := codec(t, v.Now, "new-secret", v.Secret).Decode("session", v.Cookie); err != nil {
				t.Errorf("with the secret as a fallback: %v", err)
			}
			if _, err := codec(t, v.Now, "wrong").Decode("session", v.Cookie); !errors.Is(err, session.ErrInvalidCookie) {
				t.Errorf("wrong secret: err %v, want ErrInvalidCookie", err)
			}
			if _, err := codec(t, v.Now+32*24*3600, v.Secret).Decode("session", v.Cookie); !errors.Is(err, session.ErrInvalidCookie) {
				t.Errorf("after 32 days: err %v, want ErrInvalidCookie", err)
			}
		})
	}
}

func TestUserKeyFromFlask(t *testing.T) {
	v := vectors(t)[0] // {"user_id": 42, "name": "ada"}
	d, err := codec(t, v.Now, v.Secret).Decode("session", v.Cookie)
	if err != nil || d.User != "42" {
		t.Errorf("User = %q, %v; want 42 from user_id", d.User, err)
	}
}

func TestRoundTrip(t *testing.T) {
	c := codec(t, 1_800_000_000, "s3cret")
	for _, n := range []int{1, 200} { // small, and large enough to compress
		d := &session.Data{
			Values:  map[string]json.RawMessage{"cart": json.RawMessage(`"` + strings.Repeat("ab", n) + `"`)},
			Created: time.Unix(1_799_999_000, 0), Seen: time.Unix(1_800_000_000, 0), User: "ada", Gen: 2,
		}
		v, err := c.Encode("session", d)
		if err != nil {
			t.Fatal(err)
		}
		if n > 1 && !strings.HasPrefix(v, ".") {
			t.Errorf("n=%d: compressed prefix = %v", n, strings.HasPrefix(v, "."))
		}
		got, err := c.Decode("session", v)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got.User != "ada" || got.Gen != 2 || !got.Created.Equal(d.Created) || string(got.Values["cart"]) != string(d.Values["cart"]) {
			t.Errorf("n=%d: round trip = %+v", n, got)
		}
		if _, ok := got.Values["_scaleout"]; ok {
			t.Errorf("meta key leaked into Values")
		}
	}
}

func TestRefused(t *testing.T) {
	v := vectors(t)[0]
	c := codec(t, v.Now, v.Secret)
	// A zlib bomb, correctly signed: 1 MB of zeros.
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(bytes.Repeat([]byte{'0'}, 1<<20))
	w.Close()
	key := hmac.New(sha1.New, []byte(v.Secret))
	key.Write([]byte("cookie-session"))
	signed := "." + base64.RawURLEncoding.EncodeToString(z.Bytes()) + ".a0nSAA"
	m := hmac.New(sha1.New, key.Sum(nil))
	m.Write([]byte(signed))
	bomb := signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	for name, value := range map[string]string{
		"tampered":  strings.Replace(v.Cookie, "eyJ1", "eyJ2", 1),
		"truncated": v.Cookie[:len(v.Cookie)-2],
		"no dots":   "abc",
		"empty":     "",
		"zip bomb":  bomb,
	} {
		if _, err := c.Decode("session", value); !errors.Is(err, session.ErrInvalidCookie) {
			t.Errorf("%s: err %v, want ErrInvalidCookie", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("eyJ1c2VyX2lkIjo0MiwibmFtZSI6ImFkYSJ9.a0nSAA.WEnSoGE3JEkPZrp0Ibgl9p8PiVg")
	f.Add(".eJyrVkpOLCpRsopWyixJzdU1UNKBMAxhDCMYY1RqpErF1gIAGNmY-Q.a0nSAA.ZXEdlX37ofXZpiV9M20d0BrBIS8")
	c := codec(f, 1_800_000_000, "flask-secret-key-0123456789")
	f.Fuzz(func(t *testing.T, v string) {
		if _, err := c.Decode("session", v); err != nil && !errors.Is(err, session.ErrInvalidCookie) {
			t.Fatalf("error %v does not wrap ErrInvalidCookie", err)
		}
	})
}
