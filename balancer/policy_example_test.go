package balancer_test

import (
	"fmt"
	"net/netip"

	"scaleout/balancer"
)

func examplePool() []*balancer.Backend {
	var pool []*balancer.Backend
	for i, w := range []int{5, 1, 1} {
		b, err := balancer.NewBackend(string(rune('a'+i)), fmt.Sprintf("http://127.0.0.1:%d", 8081+i), w)
		if err != nil {
			panic(err)
		}
		pool = append(pool, b)
	}
	return pool
}

// Smooth weighted round robin interleaves a heavy member's turns.
func ExampleNewSelector() {
	sel, err := balancer.NewSelector(balancer.PolicyConfig{Name: "round-robin"})
	if err != nil {
		fmt.Println(err)
		return
	}
	pool := examplePool() // weights a=5, b=1, c=1
	for range 7 {
		m, _ := sel.Select(pool, &balancer.Request{})
		fmt.Print(m.ID, " ")
	}
	fmt.Println()
	// Output: a a b a c a a
}

// Consistent hashing sends a client to the same member every time.
func ExampleNewSelector_hash() {
	sel, err := balancer.NewSelector(balancer.PolicyConfig{Name: "hash", HashKey: "ip"})
	if err != nil {
		fmt.Println(err)
		return
	}
	pool := examplePool()
	r := &balancer.Request{ClientIP: netip.MustParseAddr("192.0.2.1")}
	first, _ := sel.Select(pool, r)
	again, _ := sel.Select(pool, r)
	fmt.Println(first == again)
	// Output: true
}

// An unknown name is an error that lists the valid ones.
func ExampleNewSelector_unknown() {
	_, err := balancer.NewSelector(balancer.PolicyConfig{Name: "fastest"})
	fmt.Println(err)
	// Output: policy "fastest": unknown policy (valid: p2c, random, round-robin, least-connections, peak-ewma, hash)
}
