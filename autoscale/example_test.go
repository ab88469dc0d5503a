package autoscale_test

import (
	"context"
	"fmt"
	"time"

	"scaleout/autoscale"
)

// Decide applies the HPA rule: 2 members at 30 in-flight requests each,
// against a target of 10, want 6.
func ExampleDecide() {
	now := time.Now()
	d := autoscale.Decide(autoscale.Input{Current: 2, Observed: 30, Target: 10, Min: 1, Max: 8, Now: now})
	fmt.Println(d.Desired, d.Code)

	// Quiet now, but 4 were recommended a minute ago: scale-down waits for
	// the 5 minute window.
	d = autoscale.Decide(autoscale.Input{Current: 4, Observed: 2, Target: 10, Min: 1, Max: 8, Now: now,
		History: []autoscale.Recommendation{{At: now.Add(-time.Minute), Replicas: 4}}})
	fmt.Println(d.Desired, d.Code)
	// Output:
	// 6 scale_up
	// 4 scale_down_stabilized
}

// staticSource reports one idle member.
type staticSource struct{}

func (staticSource) Observe(ctx context.Context) (autoscale.Observation, error) {
	return autoscale.Observation{Members: []autoscale.Member{{ID: "app-1", Ready: true}}}, nil
}

// oneProvider pretends to start the one instance there is.
type oneProvider struct{}

func (oneProvider) Start(ctx context.Context) (autoscale.Instance, error) {
	return autoscale.Instance{ID: "app-1", URL: "http://127.0.0.1:8081"}, nil
}

func (oneProvider) Stop(ctx context.Context, id string) error { return nil }

// A Scaler keeps Min instances at start and reports itself through Stats.
func ExampleScaler() {
	s, err := autoscale.New(autoscale.Config{Min: 1, Max: 4, Source: staticSource{}, Provider: oneProvider{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for s.Stats().Current < 1 {
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	fmt.Println(st.Current, st.Desired, st.Metric, st.Target)
	cancel()
	fmt.Println(<-done)
	// Output:
	// 1 1 in_flight 10
	// <nil>
}
