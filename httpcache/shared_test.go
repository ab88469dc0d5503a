package httpcache

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestSharedScenarios(t *testing.T) {
	t.Parallel()
	lm := newTestClock().Now().Add(-10 * time.Hour).Format(http.TimeFormat)
	cases := []struct {
		name   string
		origin func(int64, http.ResponseWriter, *http.Request)
		steps  []step
	}{
		{"max-age fresh then stale", fixed("Cache-Control", "max-age=60"), []step{
			{wantOrigin: 1, wantBody: "n=1", wantCS: "fwd=uri-miss; stored"},
			{advance: 30 * time.Second, wantOrigin: 1, wantBody: "n=1", wantCS: "hit"},
			{advance: 31 * time.Second, wantOrigin: 2, wantBody: "n=2"},
		}},
		{"s-maxage beats max-age", fixed("Cache-Control", "max-age=1, s-maxage=100"), []step{
			{wantOrigin: 1},
			{advance: 50 * time.Second, wantOrigin: 1, wantBody: "n=1"},
		}},
		{"expires", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Expires", newTestClock().Now().Add(time.Minute).Format(http.TimeFormat))
			fmt.Fprintf(w, "n=%d", n)
		}, []step{
			{wantOrigin: 1},
			{advance: 30 * time.Second, wantOrigin: 1},
			{advance: 60 * time.Second, wantOrigin: 2},
		}},
		{"invalid expires is stale", fixed("Expires", "0"), []step{
			{wantOrigin: 1}, {wantOrigin: 2},
		}},
		{"heuristic from last-modified", fixed("Last-Modified", lm), []step{
			{wantOrigin: 1},
			{advance: 30 * time.Minute, wantOrigin: 1, wantCS: "hit"},
			{advance: 31 * time.Minute, wantOrigin: 2},
		}},
		{"no heuristic for 302", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Last-Modified", lm)
			w.Header().Set("Location", "/x")
			w.WriteHeader(http.StatusFound)
		}, []step{
			{wantStatus: 302, wantOrigin: 1}, {wantStatus: 302, wantOrigin: 2},
		}},
		{"no-store", fixed("Cache-Control", "no-store, max-age=60"), []step{
			{wantOrigin: 1, wantCS: "detail=no-store"}, {wantOrigin: 2},
		}},
		{"private never stored", fixed("Cache-Control", "private, max-age=60"), []step{
			{wantOrigin: 1, wantCS: "detail=private"}, {wantOrigin: 2, wantBody: "n=2"},
		}},
		{"set-cookie never stored", fixed("Cache-Control", "public, max-age=60", "Set-Cookie", "sid=secret"), []step{
			{wantOrigin: 1}, {wantOrigin: 2},
		}},
		{"authorization needs public", fixed("Cache-Control", "max-age=60"), []step{
			{hdr: []string{"Authorization", "Bearer a"}, wantOrigin: 1, wantCS: "detail=authorization"},
			{wantOrigin: 2},
			{hdr: []string{"Authorization", "Bearer b"}, wantOrigin: 2, wantBody: "n=2"},
		}},
		{"authorization with s-maxage stored", fixed("Cache-Control", "s-maxage=60"), []step{
			{hdr: []string{"Authorization", "Bearer a"}, wantOrigin: 1},
			{wantOrigin: 1, wantBody: "n=1"},
		}},
		{"no-cache revalidates with etag", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.Header().Set("X-Updated", fmt.Sprint(n))
				w.WriteHeader(http.StatusNotModified)
				return
			}
			fmt.Fprintf(w, "n=%d", n)
		}, []step{
			{wantOrigin: 1, wantBody: "n=1"},
			{wantOrigin: 2, wantBody: "n=1", wantCS: "fwd-status=304"},
		}},
		{"client conditional answered from cache", fixed("Cache-Control", "max-age=60", "ETag", `"abc"`, "Last-Modified", lm), []step{
			{wantOrigin: 1},
			{hdr: []string{"If-None-Match", `W/"abc"`}, wantStatus: 304, wantOrigin: 1},
			{hdr: []string{"If-None-Match", `"other"`}, wantStatus: 200, wantOrigin: 1},
			// If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
			{hdr: []string{"If-None-Match", `"other"`, "If-Modified-Since", newTestClock().Now().Format(http.TimeFormat)}, wantOrigin: 1},
			{hdr: []string{"If-Modified-Since", newTestClock().Now().Format(http.TimeFormat)}, wantStatus: 304, wantOrigin: 1},
		}},
		{"request max-age=0 and no-cache revalidate", fixed("Cache-Control", "max-age=60"), []step{
			{wantOrigin: 1},
			{hdr: []string{"Cache-Control", "max-age=0"}, wantOrigin: 2},
			{hdr: []string{"Cache-Control", "no-cache"}, wantOrigin: 3},
			{hdr: []string{"Pragma", "no-cache"}, wantOrigin: 4},
			{wantOrigin: 4, wantBody: "n=4"},
		}},
		{"only-if-cached", fixed("Cache-Control", "max-age=60"), []step{
			{hdr: []string{"Cache-Control", "only-if-cached"}, wantStatus: 504, wantOrigin: 0},
			{wantOrigin: 1},
			{hdr: []string{"Cache-Control", "only-if-cached"}, wantOrigin: 1},
		}},
		{"must-revalidate forbids max-stale", fixed("Cache-Control", "max-age=1, must-revalidate"), []step{
			{wantOrigin: 1},
			{advance: 10 * time.Second, hdr: []string{"Cache-Control", "max-stale"}, wantOrigin: 2},
		}},
		{"max-stale serves stale", fixed("Cache-Control", "max-age=1"), []step{
			{wantOrigin: 1},
			{advance: 10 * time.Second, hdr: []string{"Cache-Control", "max-stale=60"}, wantOrigin: 1, wantCS: "max-stale"},
		}},
		{"age from upstream counts", fixed("Cache-Control", "max-age=60", "Age", "50"), []step{
			{wantOrigin: 1},
			{advance: 11 * time.Second, wantOrigin: 2},
		}},
		{"vary one entry per variant", fixed("Cache-Control", "max-age=60", "Vary", "Accept-Language"), []step{
			{hdr: []string{"Accept-Language", "en"}, wantOrigin: 1, wantBody: "n=1"},
			{hdr: []string{"Accept-Language", "fr"}, wantOrigin: 2, wantBody: "n=2", wantCS: "vary-miss"},
			{hdr: []string{"Accept-Language", "en"}, wantOrigin: 2, wantBody: "n=1"},
			{hdr: []string{"Accept-Language", "fr"}, wantOrigin: 2, wantBody: "n=2"},
			{wantOrigin: 3, wantBody: "n=3"},
		}},
		{"vary star never stored", fixed("Cache-Control", "max-age=60", "Vary", "*"), []step{
			{wantOrigin: 1}, {wantOrigin: 2},
		}},
		{"unsafe method invalidates", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			if r.Method == http.MethodPost {
				w.Header().Set("Location", "/other")
				w.WriteHeader(http.StatusCreated)
			}
			fmt.Fprintf(w, "n=%d", n)
		}, []step{
			{wantOrigin: 1}, {path: "/other", wantOrigin: 2},
			{wantOrigin: 2}, {path: "/other", wantOrigin: 2},
			{method: http.MethodPost, wantStatus: 201, wantOrigin: 3, wantCS: "fwd=method"},
			{wantOrigin: 4, wantBody: "n=4"}, {path: "/other", wantOrigin: 5, wantBody: "n=5"},
		}},
		{"failed unsafe method keeps entry", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			if r.Method == http.MethodDelete {
				w.WriteHeader(http.StatusForbidden)
			}
			fmt.Fprintf(w, "n=%d", n)
		}, []step{
			{wantOrigin: 1}, {method: http.MethodDelete, wantStatus: 403, wantOrigin: 2}, {wantOrigin: 2, wantBody: "n=1"},
		}},
		{"head served from get entry", fixed("Cache-Control", "max-age=60"), []step{
			{method: http.MethodHead, wantOrigin: 1},
			{wantOrigin: 2}, {method: http.MethodHead, wantOrigin: 2, wantCS: "hit"},
		}},
		{"stale-if-error on 503", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=1, stale-if-error=60")
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintf(w, "n=%d", n)
		}, []step{
			{wantOrigin: 1},
			{advance: 10 * time.Second, wantOrigin: 2, wantBody: "n=1", wantCS: "stale-if-error"},
			{advance: 100 * time.Second, wantStatus: 503, wantOrigin: 3},
		}},
		{"no validators and expired: refetch", fixed("Cache-Control", "max-age=5"), []step{
			{wantOrigin: 1}, {advance: 6 * time.Second, wantOrigin: 2, wantCS: "fwd=stale"},
		}},
		{"surrogate-control overrides cache-control", fixed("Cache-Control", "no-store", "Surrogate-Control", "max-age=60"), []step{
			{wantOrigin: 1, wantCS: "stored"}, {advance: 30 * time.Second, wantOrigin: 1, wantBody: "n=1"},
		}},
		{"surrogate-control for another target ignored", fixed("Cache-Control", "no-store", "Surrogate-Control", "max-age=60;othercdn"), []step{
			{wantOrigin: 1}, {wantOrigin: 2},
		}},
		{"surrogate-control no-store", fixed("Cache-Control", "max-age=60", "Surrogate-Control", "no-store"), []step{
			{wantOrigin: 1}, {wantOrigin: 2},
		}},
		{"stale-if-error when the origin drops the connection", func(n int64, w http.ResponseWriter, r *http.Request) {
			if n > 1 {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			// No keep-alive: a dropped reused connection would make the
			// client transport retry and count twice.
			w.Header().Set("Connection", "close")
			w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
			fmt.Fprintf(w, "n=%d", n)
		}, []step{
			{wantOrigin: 1},
			{advance: 10 * time.Second, wantOrigin: 2, wantBody: "n=1", wantCS: "stale-if-error"},
		}},
		{"unkeyed header stripped", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprintf(w, "host=%s", r.Header.Get("X-Forwarded-Host"))
		}, []step{
			{hdr: []string{"X-Forwarded-Host", "evil.example"}, wantOrigin: 1, wantBody: "host="},
			{wantOrigin: 1, wantBody: "host="},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newTestClock()
			o := newOrigin(t, clk, tc.origin)
			_, c := newTestCache(t, o, nil)
			runSteps(t, c, o, tc.steps)
		})
	}
}

func TestRangesFromStoredResponse(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"r1"`)
		fmt.Fprint(w, "0123456789")
	})
	_, c := newTestCache(t, o, nil)
	runSteps(t, c, o, []step{
		{hdr: []string{"Range", "bytes=2-4"}, wantOrigin: 1, wantCS: "fwd=bypass"}, // miss: passed through, this origin ignores Range
		{wantOrigin: 2, wantBody: "0123456789"},
		{hdr: []string{"Range", "bytes=2-4"}, wantStatus: 206, wantOrigin: 2, wantBody: "234"},
		{hdr: []string{"Range", "bytes=7-"}, wantStatus: 206, wantOrigin: 2, wantBody: "789"},
		{hdr: []string{"Range", "bytes=-2"}, wantStatus: 206, wantOrigin: 2, wantBody: "89"},
		{hdr: []string{"Range", "bytes=20-"}, wantStatus: 416, wantOrigin: 2},
		{hdr: []string{"Range", "bytes=0-1,3-4"}, wantStatus: 200, wantOrigin: 2, wantBody: "0123456789"},
		{hdr: []string{"Range", "bytes=0-1", "If-Range", `"old"`}, wantStatus: 200, wantOrigin: 2, wantBody: "0123456789"},
		{hdr: []string{"Range", "bytes=0-1", "If-Range", `"r1"`}, wantStatus: 206, wantOrigin: 2, wantBody: "01"},
	})
}
