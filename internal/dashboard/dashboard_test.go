package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesPageAndSnapshot(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler(func() any { return map[string]int{"members": 3} }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/api/dashboard") {
		t.Fatalf("page: %d, %.100q", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.URL + "/api/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Data map[string]int `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.Data["members"] != 3 {
		t.Fatalf("snapshot: got %v, want members 3", got.Data)
	}
}
