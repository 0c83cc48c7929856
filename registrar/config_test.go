package registrar_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar"
)

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "registrar.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Ensure every JSON example in docs/configuration.md loads and validates.
func TestConfig_DocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("no JSON example in docs/configuration.md")
	}
	for i, b := range blocks {
		c := registrar.DefaultConfig()
		if err := c.LoadFile(writeFile(t, string(b[1]))); err != nil {
			t.Errorf("example %d: %v", i, err)
			continue
		}
		if err := c.Validate(); err != nil {
			t.Errorf("example %d does not validate: %v", i, err)
		}
	}
}

// Ensure file errors carry file:line:col, unknown keys are refused, and
// flags override the file.
func TestConfig_File(t *testing.T) {
	c := registrar.DefaultConfig()
	bad := writeFile(t, "{\n  \"data_dir\": \"x\",\n  \"asap\": 5\n}\n")
	err := c.LoadFile(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":3:") {
		t.Errorf("type error: got %v, want %s:3:col", err, bad)
	}
	syntax := writeFile(t, "{\n  \"data_dir\": \"x\",,\n}\n")
	if err := c.LoadFile(syntax); err == nil || !strings.Contains(err.Error(), syntax+":2:") {
		t.Errorf("syntax error: got %v, want %s:2:col", err, syntax)
	}
	unknown := writeFile(t, `{"keepalive_intervall": "1s"}`)
	if err := c.LoadFile(unknown); err == nil || !strings.Contains(err.Error(), "keepalive_intervall") {
		t.Errorf("unknown key: got %v", err)
	}
	file := writeFile(t, `{"keepalive_interval": "2s", "max_bad_pe_reports": 7, "data_dir": "/tmp/from-file"}`)
	cfg, err := registrar.ParseAgentArgs([]string{"-config", file, "-max-bad-pe-reports", "9"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KeepAliveInterval.D() != 2*time.Second || cfg.MaxBadPEReports != 9 || cfg.DataDir != "/tmp/from-file" {
		t.Errorf("got interval %v reports %d dir %q; want 2s from the file, 9 from the flag, the file's dir",
			cfg.KeepAliveInterval.D(), cfg.MaxBadPEReports, cfg.DataDir)
	}
	if _, err := registrar.ParseAgentArgs([]string{"-keepalive-interval", "1ms", "-announce", "10.0.0.1:5", "-join", "nope"}); err == nil ||
		!strings.Contains(err.Error(), "keepalive_interval") || !strings.Contains(err.Error(), "announce") || !strings.Contains(err.Error(), "join") {
		t.Errorf("bad flags: got %v, want every problem listed", err)
	}
}
