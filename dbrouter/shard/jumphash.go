package shard

import "fmt"

// Jump is Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory,
// Consistent Hash Algorithm", 2014) over the key's hash: keys spread evenly
// over the shards, no table is kept, and growing from n to n+1 shards moves
// only 1/(n+1) of the keys. Because placement is a separate step (the Map),
// the logical shard count is chosen once, generously, and physical
// databases are added by moving shards, not by changing n. It is safe for
// concurrent use.
type Jump struct{ n int }

// NewJump returns jump hash over n logical shards (n >= 1).
func NewJump(n int) (Jump, error) {
	if n < 1 || n > 1<<20 {
		return Jump{}, fmt.Errorf("%w: jump hash over %d shards: want 1..%d", ErrBadConfig, n, 1<<20)
	}
	return Jump{n: n}, nil
}

// Shard implements Func.
func (j Jump) Shard(k Key) int { return jumpHash(k.Hash(), j.n) }

// Shards implements Func.
func (j Jump) Shards() int { return j.n }

// jumpHash is the algorithm from the paper: a linear congruential generator
// seeded with the key decides, bucket count by bucket count, where the key
// jumps next.
func jumpHash(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}
