package app

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
)

var pages = template.Must(template.New("layout").Parse(`{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>scaleout airline</title>
<style>
body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left}
.by{margin-top:2rem;padding:.5rem;background:#eef;border-radius:4px;font-size:.9rem}
nav a{margin-right:1rem}
</style></head><body>
<nav><a href="/flights">Flights</a><a href="/me">My bookings</a><a href="/login">Log in</a></nav>
{{end}}
{{define "bottom"}}<p class="by">Served by app server <b>{{.Server}}</b>. Reload to watch the balancer spread requests.</p></body></html>{{end}}

{{define "flights"}}{{template "top"}}<h1>Flights</h1>
<table><tr><th>#</th><th>From</th><th>To</th><th>Duration</th><th>Kind</th><th>Passengers</th></tr>
{{range .Data.Flights}}<tr><td><a href="/flights/{{.ID}}">{{.ID}}</a></td><td>{{.OriginCity}} ({{.Origin}})</td><td>{{.DestCity}} ({{.Destination}})</td><td>{{.Duration}} min</td><td>{{.Kind}}</td><td>{{.Passengers}}</td></tr>
{{end}}</table>{{template "bottom" .}}{{end}}

{{define "flight"}}{{template "top"}}{{with .Data.Flight}}<h1>Flight {{.ID}}: {{.OriginCity}} to {{.DestCity}}</h1>
<p>{{.Origin}} to {{.Destination}}, {{.Duration}} minutes, {{.Kind}}.</p>{{end}}
<h2>Passengers</h2><ul>{{range .Data.Passengers}}<li>{{.}}</li>{{else}}<li>No passengers yet.</li>{{end}}</ul>
<h2>Book a seat</h2>
<form method="post" action="/flights/{{.Data.Flight.ID}}/book"><input name="name" placeholder="Passenger name" required maxlength="100"> <button>Book</button></form>
{{template "bottom" .}}{{end}}

{{define "login"}}{{template "top"}}<h1>Log in</h1>
<form method="post" action="/login"><input name="name" placeholder="Your name" required maxlength="64"> <button>Log in</button></form>
<p>Your session follows you to whichever app server the balancer picks next.</p>{{template "bottom" .}}{{end}}

{{define "me"}}{{template "top"}}<h1>Hello, {{.Data.User}}</h1>
<p>You logged in on server <b>{{.Data.LoggedInOn}}</b>; this page came from another one, perhaps, with the same session.</p>
<h2>Your bookings</h2><ul>{{range .Data.Bookings}}<li>{{.}}</li>{{else}}<li>None yet.</li>{{end}}</ul>
<form method="post" action="/logout"><button>Log out</button></form>{{template "bottom" .}}{{end}}
`))

// render writes the named page, with the server's id, as HTML.
func (a *App) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, map[string]any{"Data": data, "Server": a.cfg.ID}); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
