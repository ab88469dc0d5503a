package cache

import "encoding/json"

// Codec turns values of type V into bytes for a Store and back. Stores that
// keep entries in this process never call Unmarshal on a hit: the decoded
// value is memoized in the entry.
type Codec[V any] interface {
	// Marshal encodes v.
	Marshal(v V) ([]byte, error)
	// Unmarshal decodes data made by Marshal.
	Unmarshal(data []byte) (V, error)
}

// JSONCodec encodes values with encoding/json. It is the default Codec and
// is safe for concurrent use.
type JSONCodec[V any] struct{}

// Marshal encodes v as JSON.
func (JSONCodec[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a new V.
func (JSONCodec[V]) Unmarshal(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}
