package session

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestParseData(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"c":1,"s":2}`, true},
		{` { "c" : 5 , "s" : 5 , "u" : "a\"b" , "g" : 7 , "v" : { "k" : [1, {"x": null}, "é\u00e9"], "n": -1.5e+3 } } `, true},
		{`{"c":1,"s":1,"future":{"a":[true,false]}}`, true},
		{`{"c":1,"s":1,"v":null}`, true},
		{`{"c":2,"s":1}`, false},   // seen before created
		{`{"c":0,"s":1}`, false},   // no creation time
		{`{"c":1.5,"s":2}`, false}, // not an integer
		{`{"c":1,"s":1,}`, false},
		{`{"c":1,"s":1}x`, false},
		{`{"c":1,"s":1,"v":{"k":01}}`, false},
		{`{"c":1,"s":1,"v":{"k":"a` + "\x01" + `"}}`, false},
		{`{"c":1,"s":1,"v":{"k":tru}}`, false},
		{`{"c":1,"s":1,"v":{"k":"\x"}}`, false},
		{`{"c":1,"s":1,"v":{"k":[1 2]}}`, false},
		{`{"c":99999999999999999999,"s":1}`, false},
		{``, false},
		{`{"c":1,"s":1,"v":` + string(bytes.Repeat([]byte("["), 100)) + string(bytes.Repeat([]byte("]"), 100)) + `}`, false},
	}
	for _, tc := range tests {
		d, err := ParseData([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseData(%q) = %+v, %v; want ok=%v", tc.in, d, err, tc.ok)
		}
	}
	d, _ := ParseData([]byte(tests[1].in))
	if d.User != `a"b` || d.Gen != 7 || string(d.Values["n"]) != "-1.5e+3" || !d.Created.Equal(time.Unix(5, 0)) {
		t.Errorf("parsed %+v", d)
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	d := Data{
		Values:  map[string]json.RawMessage{"plain": json.RawMessage(`1`), "é<tag>\"q\"": json.RawMessage(`{"a":[1,"x"]}`)},
		Created: time.Unix(100, 0), Seen: time.Unix(200, 0), User: "u\n1", Gen: 2,
	}
	b := d.AppendJSON(nil)
	if !json.Valid(b) {
		t.Fatalf("AppendJSON wrote invalid JSON %s", b)
	}
	got, err := ParseData(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != d.User || got.Gen != d.Gen || !got.Seen.Equal(d.Seen) || len(got.Values) != 2 ||
		string(got.Values["é<tag>\"q\""]) != `{"a":[1,"x"]}` {
		t.Errorf("round trip = %+v, want %+v", got, d)
	}
}

// FuzzParseData checks the hand-written parser against encoding/json: what
// it accepts is valid JSON that encoding/json reads the same way.
func FuzzParseData(f *testing.F) {
	for _, s := range []string{`{"c":1,"s":2,"u":"x","g":3,"v":{"a":[1,{"b":null}],"c":"\u00e9"}}`, `{}`, `{"c":1,"s":1,"v":{"k":1e5}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseData(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		// Decode into a map: encoding/json matches struct fields without
		// regard to case, which Data's format does not do.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b, &top); err != nil {
			t.Fatalf("accepted %q that encoding/json refuses: %v", b, err)
		}
		var c, g int64
		var u string
		var v map[string]json.RawMessage
		json.Unmarshal(top["c"], &c)
		json.Unmarshal(top["g"], &g)
		json.Unmarshal(top["u"], &u)
		json.Unmarshal(top["v"], &v)
		if u != d.User || g != d.Gen || c != d.Created.Unix() || len(v) != len(d.Values) {
			t.Fatalf("parsed %+v, encoding/json c=%d g=%d u=%q v=%v", d, c, g, u, v)
		}
		for k, raw := range v {
			if !bytes.Equal(bytes.TrimSpace(raw), d.Values[k]) {
				t.Fatalf("value %q = %s, encoding/json %s", k, d.Values[k], raw)
			}
		}
	})
}
