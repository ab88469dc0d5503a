package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"scaleout/health"
)

// printPool is a Pool that prints what the registry asks of it; a balancer
// adapter does the same calls on its real pool.
type printPool struct{ mu sync.Mutex }

func (p *printPool) Upsert(m health.Member) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Printf("upsert %s %s in_flight=%d\n", m.ID, m.URL, m.InFlight)
	return nil
}

func (p *printPool) SetState(id string, s health.MemberState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Printf("state %s %s\n", id, s)
	return nil
}

func (p *printPool) Remove(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Printf("remove %s\n", id)
	return nil
}

// A balancer mounts the registry's handler on its admin listener and runs
// its lease loop beside it.
func ExampleRegistry() {
	reg, err := health.NewRegistry(health.RegistryConfig{Pool: &printPool{}, Token: "s3cret"})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+health.HeartbeatPath, reg.Handler())
	// go reg.Run(ctx) expires leases; not needed for this example.

	for _, state := range []string{"ready", "draining", "leaving"} {
		body := `{"id":"app-1","url":"http://127.0.0.1:8081","state":"` + state + `","in_flight":2,"capacity":16,"interval_ms":1000}`
		req := httptest.NewRequest("POST", health.HeartbeatPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// upsert app-1 http://127.0.0.1:8081 in_flight=2
	// state app-1 ready
	// 200 {"lease_ms":3000}
	// upsert app-1 http://127.0.0.1:8081 in_flight=2
	// state app-1 draining
	// 200 {"lease_ms":3000}
	// remove app-1
	// 200 {"lease_ms":0}
}

// An app server written in Go wraps its handler with the sender's
// middleware and runs the sender until it is told to stop; ending the
// context sends "leaving" to every balancer before Run returns.
func ExampleSender() {
	reg, _ := health.NewRegistry(health.RegistryConfig{Pool: &printPool{}, Token: "s3cret"})
	lb := httptest.NewServer(reg.Handler()) // a balancer's admin listener
	defer lb.Close()

	app := httptest.NewUnstartedServer(nil)
	sender, err := health.NewSender(health.SenderConfig{
		Balancers: []string{lb.URL},
		Self:      "http://" + app.Listener.Addr().String(),
		ID:        "app-1",
		Token:     "s3cret",
		Interval:  time.Minute,
		Capacity:  16,
	})
	if err != nil {
		panic(err)
	}
	app.Config.Handler = sender.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}))
	app.Start()
	defer app.Close()

	ctx, stop := context.WithCancel(context.Background())
	stop() // the app's SIGTERM, at once for the example
	if err := sender.Run(ctx); err != nil {
		fmt.Println("leaving:", err)
	}
	fmt.Println("left:", reg.Stats().Leaves)
	// Output:
	// remove app-1
	// left: 1
}

// statusFunc adapts a function to StatusSetter.
type statusFunc func(id string, healthy bool)

func (f statusFunc) SetHealthy(id string, healthy bool) { f(id, healthy) }

type targetList []health.Target

func (t targetList) Targets() []health.Target { return t }

// A balancer probes its members' health paths and feeds transitions to its
// pool through a StatusSetter (the balancer's SetHealthy, adapted).
func ExampleProber() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
	}))
	defer app.Close()

	verdict := make(chan string, 1)
	p, err := health.NewProber(health.ProberConfig{
		Targets:  targetList{{ID: "app-1", URL: app.URL}},
		Status:   statusFunc(func(id string, healthy bool) { verdict <- fmt.Sprint(id, " healthy=", healthy) }),
		Path:     "/healthz",
		Interval: 10 * time.Millisecond, // 2s by default
		Fall:     3,
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go p.Run(ctx)
	fmt.Println(<-verdict)
	// Output:
	// app-1 healthy=false
}
