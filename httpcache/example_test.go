package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"scaleout/httpcache"
)

// The balancer's use: a Shared cache as the RoundTripper in front of the
// transport that reaches the app servers.
func ExampleNewShared() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Surrogate-Key", "flights")
		fmt.Fprint(w, "LHR-JFK")
	}))
	defer app.Close()

	cache, err := httpcache.NewShared(httpcache.Config{Next: http.DefaultTransport, MaxBytes: 256 << 20})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cache.Run(ctx) // background revalidation for stale-while-revalidate

	client := &http.Client{Transport: cache}
	for range 2 {
		res, err := client.Get(app.URL + "/flights")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(string(body), res.Header.Get("Cache-Status"))
	}
	fmt.Println("purged:", cache.PurgeTag("flights"))
	st := cache.Stats()
	fmt.Println("hits:", st.Hits, "misses:", st.Misses)
	// Output:
	// LHR-JFK scaleout; fwd=uri-miss; stored
	// LHR-JFK scaleout; hit
	// purged: 1
	// hits: 1 misses: 1
}

// An app server sets a deliberate policy and answers conditional requests
// from a version it already knows, without rendering the page.
func ExampleCheckPreconditions() {
	version := 42
	h, err := httpcache.Policy{Public: true, MaxAge: time.Minute, StaleWhileRevalidate: 30 * time.Second}.Middleware(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v := httpcache.Validators{ETag: httpcache.VersionETag(fmt.Sprint("flight-", version), false)}
			if httpcache.CheckPreconditions(w, r, v) {
				return // 304 or 412 already written
			}
			fmt.Fprint(w, "rendered page")
		}))
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("If-None-Match", `"flight-42"`)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, res.Header.Get("Cache-Control"))
	// Output: 304 public, max-age=60, stale-while-revalidate=30
}

// ParseCacheControl reads what clients and origins send, quoted values too.
func ExampleParseCacheControl() {
	d := httpcache.ParseCacheControl([]string{`public, max-age="300"`, "stale-if-error=60"})
	fmt.Println(d.Public, d.MaxAge, d.StaleIfError, d.SMaxAge)
	// Output: true 300 60 -1
}
