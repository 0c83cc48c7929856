package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Ensure raft's election warning is an INFO line while no leader was ever
// known (a single node electing itself at start) and stays a WARN once a
// leader was known and went silent; other lines pass unchanged.
func TestRaftLogger_ElectionAtStart(t *testing.T) {
	var buf bytes.Buffer
	base := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &buf})
	l := newRaftLogger(base).Named("x").With("k", "v") // derived loggers keep the rule
	l.Warn(electionTimeoutMsg, "last-leader-addr", "", "last-leader-id", "")
	l.Warn(electionTimeoutMsg, "last-leader-addr", "127.0.0.1:7947", "last-leader-id", "0000beef")
	l.Warn("some other warning")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "[INFO]  raft.x: no raft leader known yet, starting election") {
		t.Errorf("election at start: %q, want INFO", lines[0])
	}
	if !strings.Contains(lines[1], "[WARN]  raft.x: heartbeat timeout reached, starting election") || !strings.Contains(lines[1], "last-leader-addr=127.0.0.1:7947") {
		t.Errorf("election after losing a leader: %q, want raft's WARN", lines[1])
	}
	if !strings.Contains(lines[2], "[WARN]  raft.x: some other warning") {
		t.Errorf("other warning: %q", lines[2])
	}
}
