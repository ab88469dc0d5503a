package loadgen

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	t.Parallel()
	const file = `# two targets
GET http://127.0.0.1:8080/flights
Accept: application/json

POST http://127.0.0.1:8080/bookings
Content-Type: application/json
> {"flight": 1,
>  "seat": "2A"}
HEAD https://[::1]:8443/
`
	got, err := ParseTargets(strings.NewReader(file))
	if err != nil {
		t.Fatalf("ParseTargets: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d targets, want 3", len(got))
	}
	if got[0].Method != "GET" || got[0].URL != "http://127.0.0.1:8080/flights" || got[0].Header.Get("Accept") != "application/json" {
		t.Errorf("target 1: got %+v", got[0])
	}
	if want := "{\"flight\": 1,\n \"seat\": \"2A\"}"; string(got[1].Body) != want {
		t.Errorf("target 2 body: got %q, want %q", got[1].Body, want)
	}
	if got[2].Method != "HEAD" || got[2].URL != "https://[::1]:8443/" {
		t.Errorf("target 3: got %+v", got[2])
	}
}

func TestParseTargetsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, wantInError string
	}{
		{"empty", "# nothing\n\n", "no target"},
		{"header first", "Accept: x\n", "line 1"},
		{"body first", "> body\n", "line 1: body line before"},
		{"bad scheme", "GET ftp://127.0.0.1/\n", "line 1"},
		{"bad url", "GET http://127.0.0.1:99999/\n", "line 1"},
		{"junk line", "GET http://127.0.0.1/\nnot a header\n", "line 2"},
		{"bad header name", "GET http://127.0.0.1/\nBad Name: x\n", "line 1"},
		{"generator header", "GET http://127.0.0.1/\nContent-Length: 3\n", "set by the generator"},
		{"header after body", "POST http://127.0.0.1/\n> x\nA: b\n", "line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTargets(strings.NewReader(tt.file))
			if !errors.Is(err, ErrBadTargets) {
				t.Fatalf("got error %v, want ErrBadTargets", err)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("error %q does not mention %q", err, tt.wantInError)
			}
		})
	}
}

// FuzzParseTargets: any file either parses into targets that compile, or
// fails with ErrBadTargets; never a panic.
func FuzzParseTargets(f *testing.F) {
	f.Add("GET http://127.0.0.1:8080/\nAccept: */*\n\nPOST http://h/x\n> body\n")
	f.Add("# c\nHEAD https://[::1]/\r\nHost: example\r\n")
	f.Add("GET http://a b\n")
	f.Fuzz(func(t *testing.T, file string) {
		targets, err := ParseTargets(strings.NewReader(file))
		if err != nil {
			if !errors.Is(err, ErrBadTargets) {
				t.Fatalf("error %v does not wrap ErrBadTargets", err)
			}
			return
		}
		for i, tg := range targets {
			if _, _, err := tg.compile(true); err != nil {
				t.Fatalf("target %d parsed but does not compile: %v", i, err)
			}
		}
	})
}
