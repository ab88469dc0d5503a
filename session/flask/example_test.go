package flask_test

import (
	"encoding/json"
	"fmt"
	"time"

	"scaleout/session/flask"
)

// A Go app reading the session cookie a Flask app set (SECRET_KEY shared).
func Example() {
	c, err := flask.New(flask.Config{
		Secrets: [][]byte{[]byte("flask-secret-key-0123456789")},
		UserKey: "user_id",
		Now:     func() time.Time { return time.Unix(1_800_000_000, 0) },
	})
	if err != nil {
		panic(err)
	}
	d, err := c.Decode("session", "eyJ1c2VyX2lkIjo0MiwibmFtZSI6ImFkYSJ9.a0nSAA.WEnSoGE3JEkPZrp0Ibgl9p8PiVg")
	if err != nil {
		panic(err)
	}
	var name string
	json.Unmarshal(d.Values["name"], &name)
	fmt.Println("user", d.User, "name", name)
	// Output: user 42 name ada
}
