package autoscale

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// advance lets the bubble's clock run d, then waits for every goroutine to
// block.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func wantLive(t *testing.T, w *world, n int, when string) {
	t.Helper()
	if got := w.live(); len(got) != n {
		t.Fatalf("%s: %d instances live %v, want %d", when, len(got), got, n)
	}
}

func TestScalerKeepsMinAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 3, Max: 5})
		synctest.Wait()
		wantLive(t, w, 3, "at start")
		advance(time.Minute)
		wantLive(t, w, 3, "idle for a minute")
		if st := s.Stats(); st.Current != 3 || st.Desired != 3 || st.Counts[CodeAtMin] == 0 {
			t.Errorf("Stats = current %d desired %d at_min %d, want 3, 3, > 0", st.Current, st.Desired, st.Counts[CodeAtMin])
		}
		stop()
		wantLive(t, w, 0, "after Run")
	})
}

func TestScalerScalesUpOnLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 2, Max: 8, Target: 10})
		defer stop()
		synctest.Wait()
		w.setLoad(60) // 30 per member, three times the target
		advance(12 * time.Second)
		wantLive(t, w, 6, "12s after load of 60 with target 10")
		st := s.Stats()
		if st.Counts[CodeScaleUp] != 1 {
			t.Errorf("scale_up count = %d, want 1", st.Counts[CodeScaleUp])
		}
		i := slices.IndexFunc(st.Recent, func(e Event) bool { return e.Code == CodeScaleUp })
		if i < 0 || st.Recent[i].From != 2 || st.Recent[i].To != 6 || st.Recent[i].Reason == "" {
			t.Errorf("Recent = %+v, want a scale_up event 2 -> 6 with a reason", st.Recent)
		}
		w.setLoad(800) // far past Max
		advance(6 * time.Second)
		wantLive(t, w, 8, "under a load needing 80")
		if got := s.Stats().Last.Code; got != CodeScaleUp && got != CodeAtMax {
			t.Errorf("last code = %s, want scale_up or at_max", got)
		}
	})
}

func TestScalerStepBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 1, Max: 8, MaxStepUp: 2, Interval: 10 * time.Second})
		defer stop()
		synctest.Wait()
		w.setLoad(80)
		advance(10 * time.Second) // exactly one tick: the first falls within [0, 10s)
		wantLive(t, w, 3, "one bounded step")
		if got := s.Stats().Counts[CodeScaleUpLimited]; got != 1 {
			t.Errorf("scale_up_limited count = %d, want 1", got)
		}
	})
}

func TestScalerNoFlappingInsideTolerance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 2, Max: 8, Target: 10})
		defer stop()
		w.setLoad(40)
		advance(12 * time.Second)
		wantLive(t, w, 4, "under a load of 40")
		// Wander within +-9% of the target for half an hour.
		for i := range 360 {
			w.setLoad([]int64{37, 43, 40, 39, 41}[i%5])
			advance(5 * time.Second)
		}
		wantLive(t, w, 4, "after 30 min inside the band")
		if starts, stops := w.count("start"), w.count("stop"); starts != 4 || stops != 0 {
			t.Errorf("starts %d, stops %d; want 4 and 0 (no flapping)", starts, stops)
		}
		if got := s.Stats().Counts[CodeInTolerance]; got < 300 {
			t.Errorf("within_tolerance count = %d, want about 360", got)
		}
	})
}

func TestScalerHoldsPeakUnderOscillation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		_, stop := startScaler(t, w, Config{Min: 2, Max: 8, Target: 10})
		defer stop()
		// A load swinging between 25 and 45 every 30s: the pool grows to the
		// peak's 5 and must never shrink while peaks keep coming.
		for i := range 40 {
			w.setLoad([]int64{45, 25}[i%2])
			advance(30 * time.Second)
		}
		wantLive(t, w, 5, "after 20 min of swings")
		if got := w.count("stop"); got != 0 {
			t.Errorf("%d stops under a swinging load, want 0", got)
		}
	})
}

func TestScalerScalesDownOnlyAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		w.drainFor = 3 * time.Second
		s, stop := startScaler(t, w, Config{Min: 2, Max: 8, Target: 10})
		defer stop()
		w.setLoad(60)
		advance(time.Minute)
		wantLive(t, w, 6, "under load")
		w.setLoad(0)
		advance(4*time.Minute + 50*time.Second)
		wantLive(t, w, 6, "idle for 4m50s, inside the 5 min window")
		if got := s.Stats().Counts[CodeStabilized]; got == 0 {
			t.Errorf("scale_down_stabilized count = 0, want > 0")
		}
		advance(30 * time.Second)
		live := w.live()
		if !slices.Equal(live, []string{"i1", "i2"}) {
			t.Fatalf("idle past the window: live %v, want the two oldest [i1 i2]", live)
		}
		checkDrainedBeforeStop(t, w.history(), 3*time.Second)
		if st := s.Stats(); st.Counts[CodeScaleDown] != 1 || st.Draining != 0 || st.Current != 2 {
			t.Errorf("Stats = scale_down %d draining %d current %d, want 1, 0, 2", st.Counts[CodeScaleDown], st.Draining, st.Current)
		}
	})
}

// checkDrainedBeforeStop checks every stopped instance was drained first,
// and that its stop came only once the drain had finished.
func checkDrainedBeforeStop(t *testing.T, acts []action, drain time.Duration) {
	t.Helper()
	stops := 0
	for i, a := range acts {
		if a.verb != "stop" {
			continue
		}
		stops++
		d := slices.IndexFunc(acts[:i], func(b action) bool { return b.verb == "drain" && b.id == a.id })
		e := slices.IndexFunc(acts[:i], func(b action) bool { return b.verb == "drained" && b.id == a.id })
		if d < 0 || e < 0 {
			t.Errorf("%s stopped without a finished drain before it", a.id)
			continue
		}
		if a.at.Sub(acts[d].at) < drain {
			t.Errorf("%s stopped %v after its drain began, want >= %v", a.id, a.at.Sub(acts[d].at), drain)
		}
	}
	if stops == 0 {
		t.Errorf("no instance was stopped")
	}
}

func TestScalerVictim(t *testing.T) {
	for _, tt := range []struct {
		victim Victim
		want   []string
	}{
		{VictimNewest, []string{"i1", "i2", "i3"}},
		{VictimLeastLoaded, []string{"i1", "i3", "i4"}},
	} {
		t.Run(string(tt.victim), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld()
				_, stop := startScaler(t, w, Config{Min: 3, Max: 4, Victim: tt.victim, ScaleDownWindow: -1})
				defer stop()
				w.setLoad(40)
				advance(12 * time.Second)
				wantLive(t, w, 4, "under a load of 40")
				// 27 in flight over 4 members wants 3 (the min); i2 is idle.
				w.mu.Lock()
				w.load = 0
				for _, id := range []string{"i1", "i3", "i4"} {
					w.insts[id].inFlight = 9
				}
				w.mu.Unlock()
				advance(12 * time.Second)
				if got := w.live(); !slices.Equal(got, tt.want) {
					t.Errorf("after scale-in: live %v, want %v", got, tt.want)
				}
			})
		})
	}
}

func TestScalerReplacesCrashedInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 3, Max: 5})
		defer stop()
		advance(time.Minute)
		w.crash("i2")
		synctest.Wait()
		if got := w.live(); !slices.Equal(got, []string{"i1", "i3", "i4"}) {
			t.Fatalf("after i2 crashed: live %v, want [i1 i3 i4] at once", got)
		}
		st := s.Stats()
		if st.Counts[CodeReplaced] != 1 || st.Current != 3 {
			t.Errorf("Stats = replace_crashed %d current %d, want 1, 3", st.Counts[CodeReplaced], st.Current)
		}
		if i := slices.IndexFunc(st.Recent, func(e Event) bool { return e.Code == CodeReplaced }); i < 0 || !strings.Contains(st.Recent[i].Reason, "i2") {
			t.Errorf("Recent = %+v, want a replace_crashed event naming i2", st.Recent)
		}
	})
}

func TestScalerReplacesLostInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 3, Max: 5})
		defer stop()
		advance(time.Minute)
		w.mu.Lock()
		w.insts["i2"].hidden = true
		w.mu.Unlock()
		advance(50 * time.Second)
		wantLive(t, w, 3, "50s after i2 left the pool")
		if w.count("stop") != 0 {
			t.Fatalf("an instance was stopped before LostAfter")
		}
		advance(20 * time.Second)
		if got := w.live(); !slices.Equal(got, []string{"i1", "i3", "i4"}) {
			t.Fatalf("70s after i2 left the pool: live %v, want [i1 i3 i4]", got)
		}
		if got := s.Stats().Counts[CodeLost]; got != 1 {
			t.Errorf("replace_lost count = %d, want 1", got)
		}
		if w.count("drain") != 0 {
			t.Errorf("a lost instance was drained; want it stopped at once")
		}
	})
}

func TestScalerNeverJoinedIsNotLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		_, stop := startScaler(t, w, Config{Min: 2, Max: 4})
		defer stop()
		synctest.Wait()
		w.mu.Lock()
		w.insts["i2"].hidden = true // still starting, as far as the pool knows
		w.mu.Unlock()
		advance(5 * time.Minute)
		if w.count("stop") != 0 {
			t.Errorf("an instance that never joined was stopped")
		}
	})
}

func TestScalerHoldsWhenObserveFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 2, Max: 8, ScaleDownWindow: -1})
		defer stop()
		w.setLoad(60)
		advance(12 * time.Second)
		wantLive(t, w, 6, "under load")
		w.mu.Lock()
		w.obsErr = errors.New("balancer unreachable")
		w.mu.Unlock()
		advance(time.Minute)
		wantLive(t, w, 6, "while the source fails")
		if st := s.Stats(); st.Last.Code != CodeNoMetric || st.Counts[CodeNoMetric] < 10 {
			t.Errorf("Stats = last %s, no_metric %d; want no_metric about 12 times", st.Last.Code, st.Counts[CodeNoMetric])
		}
	})
}

func TestScalerBacksOffFailingStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		w.failNext = 5
		s, stop := startScaler(t, w, Config{Min: 2, Max: 4})
		defer stop()
		advance(9 * time.Second)
		// 2 fail at 0s, 2 more at 2s, then the next try waits until 10s.
		w.mu.Lock()
		got := w.starts
		w.mu.Unlock()
		if got != 4 {
			t.Errorf("start attempts in the first 9s = %d, want 4 (backing off)", got)
		}
		advance(time.Minute)
		wantLive(t, w, 2, "once starts succeed")
		if got := s.Stats().Counts[CodeStartFailed]; got != 5 {
			t.Errorf("start_failed count = %d, want 5", got)
		}
	})
}

func TestScalerStopsEverythingOnExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		w.drainFor = time.Hour // a drain in progress must not hold up shutdown
		_, stop := startScaler(t, w, Config{Min: 2, Max: 6, ScaleDownWindow: -1})
		w.setLoad(60)
		advance(12 * time.Second)
		wantLive(t, w, 6, "under load")
		w.setLoad(0)
		advance(6 * time.Second)
		if w.count("drain") == 0 {
			t.Fatalf("no drain began")
		}
		stop()
		wantLive(t, w, 0, "after Run returned")
	})
}

func TestScalerStatsJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{Min: 2, Max: 4})
		defer stop()
		w.setLoad(40)
		advance(6 * time.Second)
		b, err := json.Marshal(s.Stats())
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Current, Desired int
			Recent           []struct {
				Time     time.Time
				From, To int
				Reason   string
			}
			Counts map[string]int
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Current != 4 || got.Desired != 4 || len(got.Recent) != 1 || got.Recent[0].To != 4 || got.Recent[0].Reason == "" || got.Counts["scale_up"] != 1 {
			t.Errorf("Stats JSON = %s; want current and desired 4, one recent event to 4 with a reason, scale_up 1", b)
		}
	})
}

func TestScalerRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s, stop := startScaler(t, w, Config{})
		defer stop()
		synctest.Wait()
		if err := s.Run(t.Context()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run = %v, want ErrRunning", err)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	w := newWorld()
	ok := Config{Source: w, Provider: w}
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative min", with(func(c *Config) { c.Min = -1 }), "min -1"},
		{"max below min", with(func(c *Config) { c.Min, c.Max = 4, 2 }), "max 2 is below min 4"},
		{"unknown metric", with(func(c *Config) { c.Metric = "cpu" }), `metric "cpu"`},
		{"negative target", with(func(c *Config) { c.Target = -3 }), "target -3"},
		{"tolerance 1", with(func(c *Config) { c.Tolerance = 1 }), "tolerance 1"},
		{"negative step", with(func(c *Config) { c.MaxStepUp = -1 }), "max step up"},
		{"negative interval", with(func(c *Config) { c.Interval = -time.Second }), "interval"},
		{"unknown victim", with(func(c *Config) { c.Victim = "oldest" }), `victim "oldest"`},
		{"no source", with(func(c *Config) { c.Source = nil }), "Source"},
		{"no provider", with(func(c *Config) { c.Provider = nil }), "Provider"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want ErrConfig naming %q", err, tt.want)
			}
		})
	}
	s, err := New(ok)
	if err != nil {
		t.Fatalf("New(minimal) = %v", err)
	}
	if st := s.Stats(); st.Min != 1 || st.Max != 8 || st.Target != 10 || st.Metric != MetricInFlight {
		t.Errorf("defaults: min %d max %d target %g metric %s; want 1, 8, 10, in_flight", st.Min, st.Max, st.Target, st.Metric)
	}
}

func TestObserved(t *testing.T) {
	t.Parallel()
	obs := Observation{
		Members: []Member{{ID: "a", InFlight: 12, Ready: true}, {ID: "b", InFlight: 8, Ready: true}, {ID: "c", InFlight: 50}},
		P95:     180 * time.Millisecond,
		Queue:   6,
	}
	for _, tt := range []struct {
		metric   Metric
		obs      Observation
		current  int
		want     float64
		noMetric bool
	}{
		{MetricInFlight, obs, 2, 10, false},         // draining c is not counted
		{MetricInFlight, obs, 4, 5, false},          // two starting members count as idle
		{MetricLatencyP95, obs, 2, 180, false},      // milliseconds
		{MetricQueue, obs, 3, 2, false},             // per member
		{MetricInFlight, Observation{}, 2, 0, true}, // none joined yet
		{MetricQueue, Observation{Queue: 4}, 0, 4, false},
	} {
		got, no := observed(tt.metric, tt.obs, tt.current)
		if got != tt.want || no != tt.noMetric {
			t.Errorf("observed(%s, current %d) = %g, %v; want %g, %v", tt.metric, tt.current, got, no, tt.want, tt.noMetric)
		}
	}
}
