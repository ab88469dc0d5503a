package memstore_test

import (
	"context"
	"fmt"
	"time"

	"scaleout/session/memstore"
)

// Save is compare-and-set: 0 creates, and each save must name the version
// it read.
func Example() {
	st, _ := memstore.New(memstore.Config{})
	ctx := context.Background()
	st.Save(ctx, "id", []byte(`{"c":1,"s":1}`), time.Now().Add(time.Hour), 0)
	e, ok, _ := st.Load(ctx, "id")
	fmt.Println(ok, e.Version, st.Save(ctx, "id", e.Data, e.Expiry, 0))
	// Output: true 1 session: version conflict
}
