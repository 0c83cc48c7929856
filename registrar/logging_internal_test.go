package registrar

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

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
