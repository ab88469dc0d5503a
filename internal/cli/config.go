package cli

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// loadYAML decodes the YAML file at path into v strictly: an unknown key or a
// value of the wrong type is an error that names the file and line.
func loadYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return decodeYAML(path, data, v)
}

func decodeYAML(name string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, errEOF) || err.Error() == "EOF" {
			return nil // an empty file sets nothing
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("config %s: %s", name, strings.Join(te.Errors, "; "))
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	return nil
}

var errEOF = errors.New("EOF")

// Duration is a time.Duration written as "250ms", "10s" or "1h" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a duration string, naming the line on error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (like 250ms, 10s or 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Set and String make Duration a flag.Value.
func (d *Duration) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*d = Duration(x)
	return nil
}

func (d *Duration) String() string { return time.Duration(*d).String() }

// ByteSize is a size written as "256MB", "64KiB" or a plain byte count.
type ByteSize int64

// UnmarshalYAML parses a size, naming the line on error.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*s = ByteSize(v)
	return nil
}

// Set and String make ByteSize a flag.Value.
func (s *ByteSize) Set(v string) error {
	n, err := parseByteSize(v)
	if err != nil {
		return err
	}
	*s = ByteSize(n)
	return nil
}

func (s *ByteSize) String() string { return strconv.FormatInt(int64(*s), 10) }

// parseByteSize accepts a number with an optional unit: B, KB, MB, GB (powers
// of 1000) or KiB, MiB, GiB (powers of 1024).
func parseByteSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || num < 0 {
		return 0, fmt.Errorf("%q is not a size (like 256MB, 64KiB or 1048576)", v)
	}
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
	m, ok := mult[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("%q: unknown size unit %q", v, s[i:])
	}
	return int64(num * m), nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func newDiscardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
