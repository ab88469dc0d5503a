package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"scaleout/loadgen"
)

// headerFlags collects repeated -H "Name: value" flags.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	*h = append(*h, v)
	return nil
}

// benchFlags holds the parsed command line of "scaleout bench".
type benchFlags struct {
	fs                                  *flag.FlagSet
	rate                                float64
	connections                         int
	duration, timeout, progress         time.Duration
	requests                            int64
	method, body, bodyFile, targetsFile string
	headers                             headerFlags
	noKeepAlive, jsonOut                bool
	findCapacity                        bool
	slo, stepDuration                   time.Duration
	errorBudget, startRate, maxRate     float64
}

func newBenchFlags(env *Env) *benchFlags {
	f := &benchFlags{fs: newFlagSet(env, "bench", "bench URL [flags]   or   bench --targets FILE [flags]")}
	fs := f.fs
	fs.Float64Var(&f.rate, "rate", 100, "open-loop arrival `rate` in requests per second (each request timed from its scheduled start); with --connections and no --rate the run is closed loop")
	fs.IntVar(&f.connections, "connections", 0, "closed loop: requests kept in flight, like wrk -c; open loop: cap on connections, opened as needed (default 256)")
	fs.DurationVar(&f.duration, "duration", 0, "how long to send load (default 10s, or 1h when --requests is given)")
	fs.Int64Var(&f.requests, "requests", 0, "stop after this many requests (0: no count bound)")
	fs.StringVar(&f.method, "method", "GET", "HTTP `method`")
	fs.Var(&f.headers, "H", "request header \"Name: value\" (repeatable)")
	fs.StringVar(&f.body, "body", "", "request body")
	fs.StringVar(&f.bodyFile, "body-file", "", "read the request body from `file`")
	fs.StringVar(&f.targetsFile, "targets", "", "read several targets from `file` (\"METHOD URL\", \"Name: value\" headers, \"> body\" lines, blank line between)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout for connecting and for each request")
	fs.BoolVar(&f.noKeepAlive, "no-keepalive", false, "open a new connection for every request")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result as one JSON object on standard output")
	fs.DurationVar(&f.progress, "progress", time.Second, "progress interval on standard error (0: none)")
	fs.BoolVar(&f.findCapacity, "find-capacity", false, "search for the highest rate with p99 under --slo and errors under --error-budget")
	fs.DurationVar(&f.slo, "slo", 50*time.Millisecond, "capacity search: p99 latency objective")
	fs.Float64Var(&f.errorBudget, "error-budget", 0.01, "capacity search: largest fraction of failed requests")
	fs.Float64Var(&f.startRate, "start-rate", 50, "capacity search: first step's rate (doubled while steps pass)")
	fs.Float64Var(&f.maxRate, "max-rate", 100000, "capacity search: highest rate tried")
	fs.DurationVar(&f.stepDuration, "step-duration", 5*time.Second, "capacity search: how long each step runs")
	return f
}

// parse parses args, allowing flags before and after the URL, and returns
// the positional arguments.
func (f *benchFlags) parse(env *Env, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(env, f.fs, args); err != nil {
			return nil, err
		}
		if f.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
}

func runBench(ctx context.Context, env *Env, args []string) error {
	f := newBenchFlags(env)
	pos, err := f.parse(env, args)
	if err != nil {
		return helpIsNil(err)
	}
	cfg, err := f.config(pos)
	if err != nil {
		return err
	}
	if f.findCapacity {
		return f.runSearch(ctx, env, cfg)
	}
	p := newProgressPrinter(env.Stderr)
	if f.progress > 0 {
		cfg.Progress, cfg.ProgressInterval = p.print, f.progress
	}
	g, err := loadgen.New(cfg)
	if err != nil {
		return usageErrorf("bench: %w", err)
	}
	// Run connects to every target before sending anything: an
	// unreachable one fails here, with no load sent.
	res, err := g.Run(ctx)
	p.done()
	if err != nil && res == nil {
		return fmt.Errorf("bench: %w", err)
	}
	if f.jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(res); werr != nil {
			return werr
		}
	} else if werr := res.WriteText(env.Stdout); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("bench: interrupted: %w", err)
	}
	return nil
}

// config checks the flags and builds the load configuration; every problem
// is a usage error, found before any load is sent.
func (f *benchFlags) config(pos []string) (loadgen.Config, error) {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var cfg loadgen.Config
	switch {
	case f.rate <= 0:
		return cfg, usageErrorf("bench: --rate %v: must be a positive number of requests per second", f.rate)
	case f.connections < 0:
		return cfg, usageErrorf("bench: --connections %d: must not be negative", f.connections)
	case f.duration < 0:
		return cfg, usageErrorf("bench: --duration %v: must not be negative", f.duration)
	case f.requests < 0:
		return cfg, usageErrorf("bench: --requests %d: must not be negative", f.requests)
	case f.timeout <= 0:
		return cfg, usageErrorf("bench: --timeout %v: must be positive", f.timeout)
	case f.progress < 0:
		return cfg, usageErrorf("bench: --progress %v: must not be negative", f.progress)
	case len(pos) > 1:
		return cfg, usageErrorf("bench: one URL expected, got %d arguments: %q", len(pos), pos)
	case len(pos) == 1 && f.targetsFile != "":
		return cfg, usageErrorf("bench: give a URL or --targets, not both")
	case len(pos) == 0 && f.targetsFile == "":
		return cfg, usageErrorf("bench: no URL given (usage: scaleout bench URL [flags])")
	case f.body != "" && f.bodyFile != "":
		return cfg, usageErrorf("bench: give --body or --body-file, not both")
	}
	targets, err := f.targets(pos)
	if err != nil {
		return cfg, err
	}
	cfg = loadgen.Config{
		Targets: targets, Rate: f.rate, Connections: f.connections, Duration: f.duration,
		Requests: f.requests, Timeout: f.timeout, DisableKeepAlive: f.noKeepAlive,
	}
	if set["connections"] && !set["rate"] {
		cfg.Rate = 0 // closed loop
	}
	// New validates the targets and the bounds without sending anything.
	if _, err := loadgen.New(cfg); err != nil {
		return cfg, usageErrorf("bench: %w", err)
	}
	return cfg, nil
}

// targets builds the targets from the URL and flags, or reads the file.
func (f *benchFlags) targets(pos []string) ([]loadgen.Target, error) {
	if f.targetsFile != "" {
		file, err := os.Open(f.targetsFile)
		if err != nil {
			return nil, usageErrorf("bench: --targets: %w", err)
		}
		defer file.Close()
		t, err := loadgen.ParseTargets(file)
		if err != nil {
			return nil, usageErrorf("bench: --targets %s: %w", f.targetsFile, err)
		}
		return t, nil
	}
	t := loadgen.Target{Method: f.method, URL: pos[0], Body: []byte(f.body)}
	if f.bodyFile != "" {
		b, err := os.ReadFile(f.bodyFile)
		if err != nil {
			return nil, usageErrorf("bench: --body-file: %w", err)
		}
		t.Body = b
	}
	for _, h := range f.headers {
		name, value, _ := strings.Cut(h, ":")
		if t.Header == nil {
			t.Header = http.Header{}
		}
		t.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return []loadgen.Target{t}, nil
}

// runSearch runs --find-capacity and prints the steps and the knee.
func (f *benchFlags) runSearch(ctx context.Context, env *Env, load loadgen.Config) error {
	cfg := loadgen.SearchConfig{
		Load: load, SLO: f.slo, ErrorBudget: f.errorBudget, StartRate: f.startRate,
		MaxRate: f.maxRate, StepDuration: f.stepDuration,
	}
	switch {
	case f.slo <= 0:
		return usageErrorf("bench: --slo %v: must be positive", f.slo)
	case f.errorBudget <= 0 || f.errorBudget >= 1:
		return usageErrorf("bench: --error-budget %v: must be a fraction between 0 and 1", f.errorBudget)
	case f.startRate <= 0 || f.maxRate <= 0:
		return usageErrorf("bench: --start-rate and --max-rate must be positive")
	case f.stepDuration <= 0:
		return usageErrorf("bench: --step-duration %v: must be positive", f.stepDuration)
	}
	if f.progress > 0 {
		cfg.OnStep = func(st loadgen.Step) {
			fmt.Fprintf(env.Stderr, "step %-6s offered %8.1f/s achieved %8.1f/s p99 %7.2fms errors %5.2f%%  %s\n",
				st.Phase, st.OfferedRPS, st.AchievedRPS, st.P99MS, 100*st.ErrorRatio, st.Verdict)
		}
	}
	s, err := loadgen.NewSearch(cfg)
	if err != nil {
		return usageErrorf("bench: %w", err)
	}
	c, err := s.Run(ctx)
	if err != nil && (c == nil || errors.Is(err, loadgen.ErrUnreachable)) {
		return fmt.Errorf("bench: %w", err)
	}
	if f.jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(c); werr != nil {
			return werr
		}
	} else if werr := c.WriteText(env.Stdout); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("bench: capacity search interrupted: %w", err)
	}
	return nil
}

// progressPrinter shows loadgen.Progress: one line rewritten in place on a
// terminal, plain periodic lines otherwise (logs, pipes, CI).
type progressPrinter struct {
	w        io.Writer
	terminal bool
	printed  bool
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	p := &progressPrinter{w: w}
	if f, ok := w.(*os.File); ok {
		p.terminal = isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
	}
	return p
}

func (p *progressPrinter) print(pr loadgen.Progress) {
	line := fmt.Sprintf("%6.1fs  %8d req  %9.1f req/s  %d errors  p50 %s  p99 %s  late %d  %4.0fs left",
		pr.Elapsed.Seconds(), pr.Requests, pr.Rate, pr.Errors, fmtDur(pr.P50), fmtDur(pr.P99), pr.Late, pr.Remaining.Seconds())
	if p.terminal {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.printed = true
}

// done ends the progress display, clearing the terminal line.
func (p *progressPrinter) done() {
	if p.terminal && p.printed {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}
