package registrar

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
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

// Ensure -log-file writes the logs to the file and rotates it by size,
// keeping log_file_max_backups old files.
func TestLogFile_RotatesBySize(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.LogFile = filepath.Join(dir, "registrar.log")
	cfg.LogFileMaxSize = 1 // MB
	cfg.LogFileMaxBackups = 1
	log, closer := newLogger(cfg)
	line := strings.Repeat("x", 1000)
	for i := 0; i < 3000; i++ { // about 3 MB: two rotations
		log.Info("filler", "n", i, "pad", line)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over the 1 MB limit", e.Name(), fi.Size())
		}
	}
	// The current file and one backup (max backups 1; lumberjack removes
	// older ones in the background, so allow it a moment to be seen).
	if len(names) < 2 || len(names) > 3 || !slices.Contains(names, "registrar.log") {
		t.Errorf("files after rotation: %v, want registrar.log and its backup", names)
	}
	b, _ := os.ReadFile(cfg.LogFile)
	if !strings.Contains(string(b), "n=2999") {
		t.Error("the current log file lacks the last line")
	}
}
