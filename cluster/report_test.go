package cluster

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Ensure an unreachability report survives the trip between members, and
// that a malformed one is refused with an error rather than misread: a
// member message comes from gossip, which only the gossip key protects.
func TestReportEncoding(t *testing.T) {
	m := &Membership{node: &Node{cfg: NodeConfig{ID: 0xabcd0001}}, log: hclog.NewNullLogger(), reports: make(chan Report, 1)}
	want := Report{Pool: "pool", PE: 7, Reporter: netip.MustParseAddr("192.0.2.9"), From: 0xabcd0001}
	b := m.encodeReport(want)
	got, err := decodeReport(b)
	if err != nil || got != want {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
	}
	v6 := want
	v6.Reporter = netip.MustParseAddr("2001:db8::1")
	if got, err := decodeReport(m.encodeReport(v6)); err != nil || got != v6 {
		t.Fatalf("IPv6 reporter: decoded %+v, %v; want %+v", got, err, v6)
	}
	for name, bad := range map[string][]byte{
		"empty":        {},
		"tag only":     {reportMsg},
		"no pool":      b[:25],
		"wrong tag":    append([]byte{'X'}, b[1:]...),
		"pool too big": append(append([]byte{}, b[:25]...), strings.Repeat("x", maxReportPool+1)...),
	} {
		if r, err := decodeReport(bad); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, r)
		}
		m.takeReport(bad) // dropped, never queued
	}
	select {
	case r := <-m.reports:
		t.Errorf("a malformed report was queued: %+v", r)
	default:
	}
	m.takeReport(b)
	m.takeReport(b) // the queue (1 here) is full: dropped, not blocking
	if r := <-m.reports; r != want {
		t.Errorf("queued %+v, want %+v", r, want)
	}
}
