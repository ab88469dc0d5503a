package hook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"scaleout/autoscale/hook"
)

// A hook script adds a server (printing "ID URL" last) and removes one by
// id; the Provider runs it for the Scaler.
func Example() {
	dir, _ := os.MkdirTemp("", "hook-example")
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "hook.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
case "$1" in
add) echo "starting a server" >&2; echo "web-1 http://127.0.0.1:9001" ;;
remove) echo "removing $2" >&2 ;;
esac
`), 0o755)
	p, err := hook.New(hook.Config{Command: []string{"/bin/sh", script}})
	if err != nil {
		fmt.Println(err)
		return
	}
	in, err := p.Start(context.Background())
	fmt.Println(in.ID, in.URL, err)
	fmt.Println(p.Stop(context.Background(), in.ID))
	// Output:
	// web-1 http://127.0.0.1:9001 <nil>
	// <nil>
}
