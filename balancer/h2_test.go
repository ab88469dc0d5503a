package balancer

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestHTTP2PriorKnowledge(t *testing.T) {
	t.Parallel()
	m := newMember(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body)+" via "+r.Proto)
	})
	p := startBalancer(t, Config{}, m.URL)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, p.url+"/h2", strings.NewReader("x"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("%s: client spoke %s, want HTTP/2", method, resp.Proto)
		}
		if want := method + " /h2 x via HTTP/1.1"; string(body) != want {
			t.Errorf("%s: got %q, want %q", method, body, want)
		}
	}
	// HTTP/1.1 clients on the same listener are unaffected.
	if _, body := get(t, newClient(), p.url+"/"); body != " / via HTTP/1.1" && !strings.HasSuffix(body, "via HTTP/1.1") {
		t.Errorf("HTTP/1.1 after HTTP/2: got %q", body)
	}
}
