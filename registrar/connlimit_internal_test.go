package registrar

import "testing"

// Ensure the global connection cap keeps fdReserve descriptors free
// under a normal open file limit, half of a low one (below 2*fdReserve,
// where a fixed reserve would leave no cap at all and the accepts would
// run into EMFILE), and honours a smaller max_connections.
func TestConnCap(t *testing.T) {
	for _, tc := range []struct {
		maxConns int
		fdLimit  uint64
		want     int
	}{
		{0, 0, 0},             // limit unknown, no max_connections: no cap
		{100, 0, 100},         // limit unknown: max_connections
		{0, 1024, 1024 - 256}, // the descriptor limit less the reserve
		{0, 600, 600 - 256},
		{0, 512, 256}, // 2*fdReserve: the reserve is still 256
		{0, 511, 256}, // low: half is kept (511-255)
		{0, 300, 150}, // low: half
		{0, 1, 1},     // never 0 (no cap)
		{100, 1024, 100},
		{5000, 1024, 768},
		{200, 300, 150},
		{0, 1 << 40, 0}, // beyond int32: no bound from the limit
	} {
		if got := connCap(tc.maxConns, tc.fdLimit); got != tc.want {
			t.Errorf("connCap(max_connections %d, limit %d) = %d, want %d", tc.maxConns, tc.fdLimit, got, tc.want)
		}
	}
}
