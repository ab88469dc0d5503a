package loadgen

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteText writes r as a human-readable report: load, rates, errors by
// kind and status, lateness, latency percentiles and a text histogram.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Mode == "open" {
		fmt.Fprintf(&b, "Load:         open loop, offered %.1f req/s, %d connections used\n", r.OfferedRPS, r.Connections)
	} else {
		fmt.Fprintf(&b, "Load:         closed loop, %d connections (finds throughput; its latency omits the waits\n", r.Connections)
		b.WriteString("              of requests a stalled server kept from being sent: use a rate for latency)\n")
	}
	fmt.Fprintf(&b, "Requests:     %d in %.2fs, achieved %.1f req/s", r.Requests, r.Seconds, r.AchievedRPS)
	if r.OfferedRPS > 0 {
		fmt.Fprintf(&b, " (%.1f%% of offered)", 100*r.AchievedRPS/r.OfferedRPS)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Errors:       %d", r.Errors)
	if r.Requests > 0 && r.Errors > 0 {
		fmt.Fprintf(&b, " (%.2f%%): %s", 100*float64(r.Errors)/float64(r.Requests), countsText(r.ErrorsByKind))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Status codes: %s\n", countsText(r.StatusCodes))
	if r.Mode == "open" {
		fmt.Fprintf(&b, "Started late: %d (more than %v behind schedule), max lag %.1fms\n", r.StartedLate, lateThreshold, r.MaxLagMS)
		if r.StartedLate > 0 {
			b.WriteString("              the generator fell behind: all connections were busy or it lacked CPU;\n")
			b.WriteString("              latency still counts from each request's scheduled start\n")
		}
	}
	fmt.Fprintf(&b, "Bytes read:   %d\n", r.Bytes)
	l := r.Latency
	fmt.Fprintf(&b, "Latency (ms): min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		num(l.Min), num(l.Mean), num(l.P50), num(l.P90), num(l.P99), num(l.P999), num(l.Max))
	if len(r.Histogram) > 0 {
		b.WriteString("Latency histogram:\n")
		writeHistogram(&b, r.Histogram)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHistogram draws one bar per bucket, scaled to the largest.
func writeHistogram(b *strings.Builder, hist []Bucket) {
	const width = 40
	var most, total int64
	for _, h := range hist {
		most = max(most, h.Count)
		total += h.Count
	}
	for _, h := range hist {
		n := 0
		if most > 0 {
			n = int((h.Count*width + most - 1) / most)
		}
		fmt.Fprintf(b, "  <= %9s ms |%-*s| %d (%.1f%%)\n", num(h.UpToMS), width, strings.Repeat("#", n), h.Count, 100*float64(h.Count)/float64(max(total, 1)))
	}
}

// countsText renders counts as "k1 n1, k2 n2" sorted by key, or "none".
func countsText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// num formats a millisecond figure with about three significant digits.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
