package registrar_test

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar"
)

// Ensure every problem of a config file is reported at once, each at the
// line and column of the key or value it is about, in the file's terms.
func TestConfig_FileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string // every error line, F standing for the file's path
	}{
		{"unknown key on its own line", "{\n  \"data_dir\": \"x\",\n  \"keepalive_intervall\": \"1s\",\n  \"log_level\": \"info\"\n}\n",
			[]string{`F:3:3: unknown key "keepalive_intervall" (did you mean "keepalive_interval"?)`}},
		{"wrong type", "{\n  \"keepalive_interval\": 5\n}\n",
			[]string{`F:2:25: keepalive_interval: want a duration like "5s", got 5`}},
		{"truncated", "{\n  \"data_dir\": \"x\",\n  \"asap\": \"10.0.0.1:38",
			[]string{`F:3:23: the file ends before the JSON object is complete (truncated, or a missing "}", "]" or quote?)`}},
		{"truncated after a comma", "{\n  \"data_dir\": \"x\",\n",
			[]string{`F:3:1: the file ends before the JSON object is complete (truncated, or a missing "}", "]" or quote?)`}},
		{"duplicate key", "{\n  \"log_level\": \"info\",\n  \"data_dir\": \"a\",\n  \"log_level\": \"debug\"\n}\n",
			[]string{`F:4:3: duplicate key "log_level" (first set at line 2)`}},
		{"two errors at once", "{\n  \"max_bad_pe_reports\": \"three\",\n  \"join\": \"10.0.0.1:7946\",\n  \"allow_foreign_addresses\": 1\n}\n",
			[]string{
				`F:2:25: max_bad_pe_reports: want a whole number, got "three"`,
				`F:3:11: join: want a list of strings like ["a", "b"], got "10.0.0.1:7946"`,
				`F:4:30: allow_foreign_addresses: want true or false, got 1`,
			}},
		{"type errors before a syntax error", "{\n  \"announce_ttl\": 1.5,\n  \"data_dir\": \"x\" \"asap\": \"y\"\n}\n",
			[]string{
				`F:2:19: announce_ttl: want a whole number, got 1.5`,
				`F:3:18: invalid character '"' after object key:value pair`,
			}},
		{"bad values located in the file", "{\n  \"keepalive_timeout\": \"1ms\",\n  \"log_level\": \"loud\"\n}\n",
			[]string{
				`F:3:16: log_level: "loud" is not one of trace, debug, info, warn, error`,
				`F:2:24: keepalive_timeout: 1ms is below 10ms`,
			}},
		{"empty file", "", []string{`F:1:1: the file is empty: want a JSON object such as {"data_dir": "/var/lib/registrar"}`}},
		{"not an object", "[\"data_dir\"]\n", []string{`F:1:1: want a JSON object {...} of config keys, got [`}},
		{"two objects", "{}\n{}\n", []string{`F:2:1: more after the end of the JSON object: a config file holds one object`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file)
			_, err := registrar.ParseAgentArgs([]string{"-config", path})
			if err == nil {
				t.Fatalf("no error, want:\n%s", strings.Join(tc.want, "\n"))
			}
			got := strings.Split(err.Error(), "\n")
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.Replace(w, "F:", path+":", 1))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var ce *registrar.ConfigError
			if !errors.As(err, &ce) || ce.File != path || ce.Line == 0 {
				t.Errorf("the error is not a located *ConfigError: %#v", err)
			}
		})
	}
}

// Ensure a key that is wrong in the file but given as a flag is not
// blamed on the file, and that the flag's value wins.
func TestConfig_FlagOverridesFileValue(t *testing.T) {
	path := writeFile(t, "{\n  \"keepalive_timeout\": \"1ms\",\n  \"keepalive_interval\": \"2s\"\n}\n")
	cfg, err := registrar.ParseAgentArgs([]string{"-config", path, "-keepalive-timeout", "3s"})
	if err != nil {
		t.Fatalf("ParseAgentArgs: %v (the flag fixes the file's value)", err)
	}
	if cfg.KeepAliveTimeout.D() != 3*time.Second || cfg.KeepAliveInterval.D() != 2*time.Second {
		t.Errorf("timeout %v interval %v, want 3s from the flag and 2s from the file", cfg.KeepAliveTimeout.D(), cfg.KeepAliveInterval.D())
	}
	_, err = registrar.ParseAgentArgs([]string{"-config", path, "-keepalive-timeout", "2ms"})
	if err == nil || err.Error() != "keepalive_timeout: 2ms is below 10ms" {
		t.Errorf("a bad flag value: got %v, want it named without the file's position", err)
	}
}

// Ensure docs/configuration.md documents every config key and every flag,
// and says which keys have no flag.
func TestConfig_DocCoversEveryKeyAndFlag(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	var file string
	var validate bool
	cfg := registrar.DefaultConfig()
	fs := registrar.AgentFlagSet(&cfg, &file, &validate)
	flagged := map[string]bool{}
	for _, k := range registrar.ConfigKeys() {
		if !regexp.MustCompile("`" + regexp.QuoteMeta(k) + "`").MatchString(text) {
			t.Errorf("docs/configuration.md does not document the key `%s`", k)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		flagged[registrar.FlagKey(f.Name)] = true
		if !strings.Contains(text, "`-"+f.Name+"`") {
			t.Errorf("docs/configuration.md does not document the flag `-%s`", f.Name)
		}
	})
	for _, k := range registrar.ConfigKeys() {
		if flagged[k] {
			continue
		}
		// A key without a flag must be marked config-only in its row.
		rows := regexp.MustCompile("(?m)^\\| `"+regexp.QuoteMeta(k)+"` \\|.*$").FindAllString(text, -1)
		if len(rows) == 0 || !strings.Contains(rows[0], "config only") {
			t.Errorf("key `%s` has no flag: it needs a row of its own that says \"config only\"; rows: %q", k, rows)
		}
	}
}

// Ensure the sample configs shipped for systemd and containers validate.
func TestConfig_SampleFiles(t *testing.T) {
	for _, f := range []string{"../docs/deploy/registrar.json", "../docs/deploy/container.json"} {
		if _, err := registrar.ParseAgentArgs([]string{"-config", f}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
