package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want asap.Policy
	}{
		{"rr", asap.Policy{Type: asap.PolicyRoundRobin}},
		{"wrr", asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: 1}},
		{"wrr:5", asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: 5}},
		{"pri:3", asap.Policy{Type: asap.PolicyPriority, Priority: 3}},
		{"lu", asap.Policy{Type: asap.PolicyLeastUsed}},
		{"lu:25%", asap.Policy{Type: asap.PolicyLeastUsed, Load: 0x40000000}},
		{"lu:0.5", asap.Policy{Type: asap.PolicyLeastUsed, Load: 0x80000000}},
		{"lu:1000", asap.Policy{Type: asap.PolicyLeastUsed, Load: 1000}},
		{"lud:0.5:100%", asap.Policy{Type: asap.PolicyLeastUsedDegradation, Load: 0x80000000, LoadDegradation: 0xFFFFFFFF}},
		{"wrand-dpf:10:0:20", asap.Policy{Type: asap.PolicyWeightedRandomDPF, Weight: 10, Distance: 20}},
		{"rand", asap.Policy{Type: asap.PolicyRandom}},
	} {
		got, err := parsePolicy(tc.in)
		if err != nil || got.Type != tc.want.Type || got.Weight != tc.want.Weight || got.Priority != tc.want.Priority ||
			got.Load != tc.want.Load || got.LoadDegradation != tc.want.LoadDegradation || got.Distance != tc.want.Distance {
			t.Errorf("parsePolicy(%q): got %+v, %v, want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"fastest", "unknown"},
		{"rr:1", "at most 0 values"},
		{"wrr:x", "weight"},
		{"lu:150%", "fraction between 0 and 1"},
		{"lu:1:2", "at most 1 values"},
	} {
		if _, err := parsePolicy(tc.in); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("parsePolicy(%q): got %v, want an error saying %q", tc.in, err, tc.says)
		}
	}
	if got := policyString(asap.Policy{Type: asap.PolicyLeastUsedDegradation, Load: 0x40000000, LoadDegradation: 0}); got != "lud load=25% degradation=0%" {
		t.Errorf("policyString: got %q", got)
	}
	if got := policyString(asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: 7}); got != "wrr weight=7" {
		t.Errorf("policyString: got %q", got)
	}
}

func TestCookie(t *testing.T) {
	c := encodeCookie(5)
	if len(c)%4 != 0 {
		t.Fatalf("cookie of %d bytes: RSPLIB needs a multiple of 4", len(c))
	}
	if n, ok := decodeCookie(c); !ok || n != 5 {
		t.Fatalf("decodeCookie: got %d, %v", n, ok)
	}
	if _, ok := decodeCookie([]byte("xxxx00000000")); ok {
		t.Error("decodeCookie accepted a foreign tag")
	}
}

func TestServices(t *testing.T) {
	if got := string(echoService{}.reply([]byte("hi\n"), 0)); got != "hi\n" {
		t.Errorf("echo: got %q", got)
	}
	if got := (discardService{}).reply([]byte("hi"), 0); got != nil {
		t.Errorf("discard: got %q", got)
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if got := string(daytimeService{now: func() time.Time { return at }}.reply(nil, 0)); got != "Monday, November 23, 2026 12:00:00-UTC\n" {
		t.Errorf("daytime: got %q", got)
	}
	l0, l1 := string(chargenService{}.reply(nil, 0)), string(chargenService{}.reply(nil, 1))
	if len(l0) != 73 || l0[:3] != ` !"` || l1[:3] != `!"#` || l0[1:72] != l1[:71] {
		t.Errorf("chargen: got %q then %q", l0, l1)
	}
}
