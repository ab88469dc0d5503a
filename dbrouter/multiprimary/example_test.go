package multiprimary_test

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"

	"scaleout/dbrouter/multiprimary"
)

// A transaction that loses Galera's certification comes back as error 1213;
// IsConflict recognizes it, and Cluster.Tx retries it.
func ExampleIsConflict() {
	err := fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1213, Message: "WSREP detected deadlock/conflict and aborted the transaction. Try restarting the transaction"})
	fmt.Println(multiprimary.IsConflict(err), multiprimary.IsConflict(errors.New("syntax error")))
	// Output: true false
}

// Homed mode sends every transaction on one key to that key's home node,
// so writers of one key queue on its row locks instead of conflicting.
func ExampleCluster_Node() {
	nodes := []*sql.DB{{}, {}, {}} // stand-ins: Node runs no query
	c, err := multiprimary.New(multiprimary.Config{Nodes: nodes, Mode: multiprimary.Homed})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Node(42) == c.Node(42), c.Node(42) >= 0 && c.Node(42) < 3)
	// Output: true true
}
