package rediscache

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"scaleout/cache"
)

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    *cache.Entry
		toks []string
	}{
		{"plain", &cache.Entry{Value: []byte(`{"id":42}`), Expires: time.UnixMilli(1_700_000_000_123), Delta: 3 * time.Millisecond}, nil},
		{"negative", &cache.Entry{Negative: true, Expires: time.UnixMilli(5)}, nil},
		{"tagged", &cache.Entry{Value: []byte("x"), Tags: []string{"flight:42", ""}, Expires: time.UnixMilli(9)}, []string{"tokA", "tokB"}},
	}
	for _, tt := range tests {
		h, err := decodeEntry(encodeEntry(tt.e, "keytok", tt.toks))
		if err != nil {
			t.Fatalf("%s: decode: %v", tt.name, err)
		}
		got := h.entry
		if !bytes.Equal(got.Value, tt.e.Value) || got.Negative != tt.e.Negative || !got.Expires.Equal(tt.e.Expires) ||
			got.Delta != tt.e.Delta || !slices.Equal(got.Tags, tt.e.Tags) || h.keyToken != "keytok" || !slices.Equal(h.tagTokens, tt.toks) {
			t.Errorf("%s: got %+v (%q %q), want %+v", tt.name, got, h.keyToken, h.tagTokens, tt.e)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	good := encodeEntry(&cache.Entry{Value: []byte("v"), Tags: []string{"t"}}, "k", []string{"x"})
	for _, b := range [][]byte{nil, []byte("S"), []byte("xx\x00"), good[:len(good)-4], []byte("S\x01\x00\x00\x00\x00\xff\xff\xff\xff\x0f")} {
		if _, err := decodeEntry(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeEntry(%q) err = %v, want ErrCorrupt", b, err)
		}
	}
}

// FuzzDecodeEntry: bytes from Redis may be anything; decoding never panics,
// and what decodes re-encodes to something that decodes the same.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(&cache.Entry{Value: []byte("v"), Tags: []string{"a"}}, "k", []string{"t"}))
	f.Add([]byte("S\x01\x01\x02\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeEntry(b)
		if err != nil {
			return
		}
		h2, err := decodeEntry(encodeEntry(h.entry, h.keyToken, h.tagTokens))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(h2.entry.Value, h.entry.Value) || !slices.Equal(h2.entry.Tags, h.entry.Tags) || h2.keyToken != h.keyToken {
			t.Fatalf("round trip changed the entry")
		}
	})
}
