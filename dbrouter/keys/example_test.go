package keys_test

import (
	"fmt"

	"scaleout/dbrouter/keys"
)

// Each shard (or primary) gets its own node number; its IDs carry it.
func ExampleSnowflake() {
	g, err := keys.NewSnowflake(keys.Config{Node: 7})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, b := g.Next(), g.Next()
	fmt.Println(a < b, keys.Node(a))
	// Output: true 7
}

// Node 2 of 3 issues 2, 5, 8, ...: MariaDB's auto_increment_offset scheme.
func ExampleOffsets() {
	o, _ := keys.NewOffsets(3, 2)
	c := keys.NewCounter(o, 0)
	fmt.Println(c.Next(), c.Next(), c.Next(), o.MariaDBSettings())
	// Output: 2 5 8 [--auto-increment-increment=3 --auto-increment-offset=2]
}

func ExampleUUIDv7() {
	g := keys.NewUUIDv7(nil)
	u := g.Next()
	fmt.Println(u.Version(), len(u.String()))
	// Output: 7 36
}
