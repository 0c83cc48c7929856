package main

import (
	"context"
	"errors"
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
	at := time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)
	var got []string
	collect := func(b []byte) error { got = append(got, string(b)); return nil }
	daytimeService{now: func() time.Time { return at }}.talk(context.Background(), collect)
	if len(got) != 1 || got[0] != "Monday, 23-November-2026 12:00:00.123456\n" {
		t.Errorf("daytime: sent %q, want one line in RSPLIB's format", got)
	}
	// chargen streams until a send fails (the pool user left).
	got = nil
	chargenService{}.talk(context.Background(), func(b []byte) error {
		if len(got) == 3 {
			return errors.New("gone")
		}
		return collect(b)
	})
	if len(got) != 3 {
		t.Fatalf("chargen sent %d messages before the failing send, want 3", len(got))
	}
	lines := strings.Split(strings.Join(got, ""), "\n")
	if len(got[0]) != 14*73 || len(lines) != 3*14+1 || lines[42] != "" {
		t.Fatalf("chargen: messages of %d bytes, %d lines; want 14 lines of 72 characters each", len(got[0]), len(lines)-1)
	}
	for i, l := range lines[:42] {
		// Line i starts with the printable character i places after ' ' (RFC 864).
		want := make([]byte, 72)
		for j := range want {
			want[j] = byte(' ' + (i+j)%95)
		}
		if l != string(want) {
			t.Fatalf("chargen line %d: %q, want %q", i, l, want)
		}
	}
	if (chargenService{}).reply([]byte("x"), 0) != nil || (daytimeService{}).reply([]byte("x"), 0) != nil {
		t.Error("daytime and chargen answer messages; they talk first and discard what they get")
	}
}
