// Package dashboard serves scaleout's live dashboard: one HTML page on the
// admin listener that polls a JSON snapshot of the balancer, the
// autoscaler and the caches every second and draws the pool, its load and
// the decisions taken. It has no dependencies beyond the browser.
package dashboard

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"time"
)

//go:embed dashboard.html
var page []byte

// Snapshot returns what the dashboard shows, as a JSON-encodable value; it
// is called once per poll and must be safe for concurrent use.
type Snapshot func() any

// Handler serves the page at "/" and the snapshot at "/api/dashboard".
func Handler(snap Snapshot) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(page)
	})
	mux.HandleFunc("GET /api/dashboard", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(struct {
			Time time.Time `json:"time"`
			Data any       `json:"data"`
		}{time.Now(), snap()})
	})
	return mux
}
