package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"scaleout/loadgen"
)

// Open-loop load: 100 requests per second for one second, each timed from
// its scheduled start.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	g, err := loadgen.New(loadgen.Config{
		Targets:  []loadgen.Target{{URL: srv.URL}},
		Rate:     100,
		Duration: time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := g.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Mode, res.Requests, res.Errors, res.StatusCodes)
	// Output: open 100 0 map[200:100]
}

// Closed-loop load like wrk: 4 connections, 200 requests in all.
func ExampleGenerator_Run_closedLoop() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()

	g, err := loadgen.New(loadgen.Config{
		Targets:     []loadgen.Target{{Method: "POST", URL: srv.URL + "/orders", Body: []byte(`{"n":1}`)}},
		Connections: 4,
		Requests:    200,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := g.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Mode, res.Requests, res.Errors)
	// Output: closed 200 0
}

func ExampleParseTargets() {
	targets, err := loadgen.ParseTargets(strings.NewReader(`
GET http://127.0.0.1:8080/flights
Accept: application/json

POST http://127.0.0.1:8080/bookings
> {"flight": 1}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range targets {
		fmt.Printf("%s %s %q\n", t.Method, t.URL, t.Body)
	}
	// Output:
	// GET http://127.0.0.1:8080/flights ""
	// POST http://127.0.0.1:8080/bookings "{\"flight\": 1}"
}

// A capacity search: raise the rate until p99 or errors go over their
// bounds, then bisect to the knee.
func ExampleSearch() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()

	s, err := loadgen.NewSearch(loadgen.SearchConfig{
		Load:         loadgen.Config{Targets: []loadgen.Target{{URL: srv.URL}}},
		SLO:          500 * time.Millisecond,
		StartRate:    20,
		MaxRate:      40,
		StepDuration: 500 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := s.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.KneeRPS, c.AtMax, len(c.Steps))
	// Output: 40 true 2
}
