package registrar

import (
	"reflect"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// Ensure that the distance is RSPLIB's: half the round-trip time in whole
// milliseconds, to the nearest step, ties to the even multiple.
func TestDistance_Rounding(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		rtt, step time.Duration
		want      uint32
	}{
		{0, 50 * ms, 0},
		{40 * ms, 50 * ms, 0},    // 20 -> 0
		{60 * ms, 50 * ms, 50},   // 30 -> 50
		{125 * ms, 50 * ms, 50},  // 62 -> 50
		{150 * ms, 50 * ms, 100}, // 75: a tie, 1.5 -> 2
		{250 * ms, 50 * ms, 100}, // 125: a tie, 2.5 -> 2
		{350 * ms, 50 * ms, 200}, // 175: a tie, 3.5 -> 4
		{240 * ms, 50 * ms, 100}, // 120 -> 100
		{99 * ms, ms, 49},        // whole milliseconds: 49.5 -> 49
		{1999 * time.Microsecond, ms, 0},
		{10 * time.Second, 50 * ms, 5000},
		{10 * time.Second, 0, 0},
	} {
		if got := distance(c.rtt, c.step); got != c.want {
			t.Errorf("distance(%v, step %v) = %d ms, want %d", c.rtt, c.step, got, c.want)
		}
	}
}

// Ensure that only the DPF policies get a distance, added to the base and
// saturating, and that no measurement leaves the base.
func TestWithDistance(t *testing.T) {
	r := &Registrar{cfg: DefaultConfig()}
	lu := asap.Policy{Type: asap.PolicyLeastUsed, Load: 5}
	if got := r.withDistance(lu, nil, 70); !reflect.DeepEqual(got, lu) {
		t.Errorf("LU got %+v, want it unchanged", got)
	}
	dpf := asap.Policy{Type: asap.PolicyPriorityLeastUsedDPF, Distance: 999}
	if got := r.withDistance(dpf, nil, 70); got.Distance != 70 {
		t.Errorf("PLU-DPF without a measurement: distance %d, want the base 70", got.Distance)
	}
	if got := r.withDistance(dpf, rttConn{nil, 240 * time.Millisecond}, 0xFFFFFFF0); got.Distance != 0xFFFFFFFF {
		t.Errorf("distance %d, want it saturated", got.Distance)
	}
}

// rttConn is a connection with a fixed round-trip time.
type rttConn struct {
	transport.Conn
	rtt time.Duration
}

func (c rttConn) RTT() (time.Duration, bool) { return c.rtt, true }
