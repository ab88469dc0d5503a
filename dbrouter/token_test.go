package dbrouter

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
)

func TestParseLSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    LSN
		wantErr bool
	}{
		{"0/0", 0, false},
		{"0/16B3748", 0x16B3748, false},
		{"16/B374D848", 0x16_B374D848, false},
		{"FFFFFFFF/FFFFFFFF", LSN(^uint64(0)), false},
		{"a/b", 0xA_0000000B, false},
		{"", 0, true},
		{"16B3748", 0, true},
		{"/1", 0, true},
		{"1/", 0, true},
		{"1/2/3", 0, true},
		{"100000000/0", 0, true},
		{"0/123456789", 0, true},
		{"-1/0", 0, true},
		{"+1/0", 0, true},
		{"0x1/0", 0, true},
		{"1 /0", 0, true},
		{"g/0", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseLSN(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrBadLSN) {
			t.Errorf("ParseLSN(%q) error %v does not wrap ErrBadLSN", tc.in, err)
		}
	}
}

func TestLSNString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   LSN
		want string
	}{
		{0, "0/0"},
		{0x16B3748, "0/16B3748"},
		{0x16_B374D848, "16/B374D848"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("LSN(%#x).String() = %q, want %q", uint64(tc.in), got, tc.want)
		}
	}
}

func TestTokenEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Token
		wantErr bool
	}{
		{"", Token{}, false},
		{"v1:0/16B3748", Token{LSN: 0x16B3748}, false},
		{"v1:16/B374D848", Token{LSN: 0x16_B374D848}, false},
		{"0/16B3748", Token{}, true},
		{"v2:0/1", Token{}, true},
		{"v1:", Token{}, true},
		{"v1:zz/1", Token{}, true},
	}
	for _, tc := range tests {
		got, err := DecodeToken(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("DecodeToken(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("DecodeToken(%q) error %v does not wrap ErrBadToken", tc.in, err)
		}
		if err == nil && got.Encode() != tc.in {
			t.Errorf("DecodeToken(%q).Encode() = %q, want the input back", tc.in, got.Encode())
		}
	}
	// Through JSON, as a session store would keep it.
	type sess struct{ T Token }
	b, err := json.Marshal(sess{Token{LSN: 42}})
	if err != nil {
		t.Fatal(err)
	}
	var back sess
	if err := json.Unmarshal(b, &back); err != nil || back.T.LSN != 42 {
		t.Fatalf("JSON round trip of %s = %+v, %v; want LSN 42", b, back, err)
	}
	if err := json.Unmarshal([]byte(`{"T":"v1:nope"}`), &back); !errors.Is(err, ErrBadToken) {
		t.Fatalf("JSON with a bad token: err %v, want ErrBadToken", err)
	}
}

func TestSessionOnlyMovesForward(t *testing.T) {
	t.Parallel()
	s := NewSession(Token{LSN: 10})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() { s.Observe(Token{LSN: LSN(i)}) })
	}
	wg.Wait()
	if got := s.Token().LSN; got != 99 {
		t.Fatalf("after observing 0..99 from 10: %v, want 99", got)
	}
	s.Observe(Token{LSN: 5})
	if got := s.Token().LSN; got != 99 {
		t.Fatalf("an older token moved the session back to %v", got)
	}
	if got := (Token{LSN: 3}).Newer(Token{LSN: 7}); got.LSN != 7 {
		t.Fatalf("Newer = %v, want 7", got)
	}
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range []string{"", "v1:0/0", "v1:16/B374D848", "v1:FFFFFFFF/FFFFFFFF", "v1:/", "0/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := DecodeToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("DecodeToken(%q) error %v does not wrap ErrBadToken", s, err)
			}
			return
		}
		again, err := DecodeToken(tok.Encode())
		if err != nil || again != tok {
			t.Fatalf("DecodeToken(%q) = %v, but its encoding %q decodes to %v, %v", s, tok, tok.Encode(), again, err)
		}
	})
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "1/", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		back, err := ParseLSN(l.String())
		if err != nil || back != l {
			t.Fatalf("ParseLSN(%q) = %v, whose String %q parses to %v, %v", s, l, l.String(), back, err)
		}
	})
}
