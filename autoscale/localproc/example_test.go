package localproc_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"scaleout/autoscale/localproc"
)

// Each instance gets its own loopback port and id; its output is kept.
// (A real template runs an app server: scaleout app --listen
// 127.0.0.1:{port} --id {id}.)
func Example() {
	p, err := localproc.New(localproc.Config{
		Command:      []string{"/bin/sh", "-c", "echo serving {id} on port {port}; exec sleep 60"},
		ReadyTimeout: -1, // this stand-in does not listen
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	in, err := p.Start(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	var logs []byte
	for deadline := time.Now().Add(time.Minute); len(logs) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		logs, _, _ = p.Logs(in.ID)
	}
	p.Stop(context.Background(), in.ID) // SIGTERM, then SIGKILL after the grace
	fmt.Println(strings.HasPrefix(in.URL, "http://127.0.0.1:"))
	fmt.Println(strings.HasPrefix(string(logs), "serving "+in.ID+" on port "))
	// Output:
	// true
	// true
}
