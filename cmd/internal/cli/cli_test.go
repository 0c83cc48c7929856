package cli

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// capture runs f with Stdout and Stderr going to buffers.
func capture(t *testing.T, f func() int) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	old, olderr := Stdout, Stderr
	Stdout, Stderr = &o, &e
	defer func() { Stdout, Stderr = old, olderr }()
	code = f()
	return code, o.String(), e.String()
}

func testApp(ran *[]string) *App {
	run := func(name string) func([]string) int {
		return func(args []string) int {
			fs := flag.NewFlagSet("prog "+name, flag.ContinueOnError)
			fs.Bool("json", false, "print JSON")
			fs.String("config", "", "config file")
			fs.String("data-dir", "", "data directory")
			if code, ok := Parse(fs, args); !ok {
				return code
			}
			*ran = append(*ran, name+" "+strings.Join(fs.Args(), " "))
			return 0
		}
	}
	return &App{Name: "prog", Summary: "a test program", Commands: []Command{
		{Name: "agent", Summary: "run", Run: run("agent")},
		{Name: "status", Summary: "show", Run: run("status")},
	}}
}

// Ensure help, version, unknown commands and flag errors give the exit
// codes and the output the CLI promises.
func TestApp_Main(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, err   string // substrings; "" = must be empty
		notOut     string
		ranCommand bool
	}{
		{args: nil, code: 2, err: "usage: prog <command>"},
		{args: []string{"-h"}, code: 0, out: "commands:"},
		{args: []string{"--help"}, code: 0, out: "commands:"},
		{args: []string{"help"}, code: 0, out: "commands:"},
		{args: []string{"help", "status"}, code: 0, out: "-json"},
		{args: []string{"help", "statsu"}, code: 2, err: `did you mean "status"?`},
		{args: []string{"version"}, code: 0, out: "go:"},
		{args: []string{"-version"}, code: 0, out: "commit:"},
		{args: []string{"agnet"}, code: 2, err: `unknown command "agnet"; did you mean "agent"?`},
		{args: []string{"zzzzzz"}, code: 2, err: "run 'prog -h' for usage", notOut: "did you mean"},
		{args: []string{"status", "-h"}, code: 0, out: "-data-dir"},
		{args: []string{"status", "-nope"}, code: 2, err: "prog status: flag provided but not defined: -nope\nrun 'prog status -h' for usage\n"},
		{args: []string{"status", "-json", "x"}, code: 0, ranCommand: true},
		{args: []string{"completion", "fish"}, code: 2, err: `unknown shell "fish"`},
	} {
		var ran []string
		app := testApp(&ran)
		code, out, errOut := capture(t, func() int { return app.Main(tc.args) })
		name := strings.Join(tc.args, " ")
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d (stdout %q, stderr %q)", name, code, tc.code, out, errOut)
		}
		if tc.out != "" && !strings.Contains(out, tc.out) {
			t.Errorf("%q: stdout %q, want it to contain %q", name, out, tc.out)
		}
		if tc.err != "" && !strings.Contains(errOut, tc.err) {
			t.Errorf("%q: stderr %q, want it to contain %q", name, errOut, tc.err)
		}
		if tc.notOut != "" && strings.Contains(out+errOut, tc.notOut) {
			t.Errorf("%q: output has %q:\n%s%s", name, tc.notOut, out, errOut)
		}
		if code == 2 && strings.Count(errOut, "flag provided but not defined") > 1 {
			t.Errorf("%q: the flag error is printed more than once:\n%s", name, errOut)
		}
		if (len(ran) > 0) != tc.ranCommand {
			t.Errorf("%q: ran %v, want ran=%v", name, ran, tc.ranCommand)
		}
	}
}

// Ensure suggestions find typos and prefixes but not unrelated words.
func TestSuggest(t *testing.T) {
	known := []string{"agent", "status", "pools", "members", "leave", "raft", "snapshot", "help", "version", "completion"}
	for got, want := range map[string]string{
		"agnet": "agent", "stauts": "status", "pool": "pools", "snapshto": "snapshot", "verison": "version",
		"raf": "raft", "memebrs": "members", "xyz": "", "completoin": "completion", "": "",
	} {
		if s := Suggest(got, known); s != want {
			t.Errorf("Suggest(%q) = %q, want %q", got, s, want)
		}
	}
}

// Ensure the bash completion script completes commands and each command's
// flags (run in a real bash).
func TestCompletion_Bash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var ran []string
	app := testApp(&ran)
	code, script, _ := capture(t, func() int { return app.Main([]string{"completion", "bash"}) })
	if code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"prog", "sta"}, "status"},
		{[]string{"prog", "status", "-j"}, "-json"},
		{[]string{"prog", "agent", "-da"}, "-data-dir"},
		{[]string{"prog", "help", "ag"}, "agent"},
		{[]string{"prog", "completion", "z"}, "zsh"},
		{[]string{"prog", ""}, "agent completion help status version"},
	} {
		var words []string
		for _, w := range tc.words {
			words = append(words, "'"+w+"'")
		}
		prog := script + "\nCOMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(tc.words)-1) + "; _prog; echo \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("completing %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

// Ensure the zsh completion script is valid zsh and names every command
// and flag.
func TestCompletion_Zsh(t *testing.T) {
	var ran []string
	app := testApp(&ran)
	code, script, _ := capture(t, func() int { return app.Main([]string{"completion", "zsh"}) })
	if code != 0 || !strings.HasPrefix(script, "#compdef prog\n") {
		t.Fatalf("completion zsh: exit %d, script starts %q", code, script[:min(len(script), 40)])
	}
	for _, want := range []string{"'agent:run'", "'status:show'", "'-json[print JSON]'", "'-config[config file]:config:_files'", "'-data-dir[data directory]:data-dir:_files -/'"} {
		if !strings.Contains(script, want) {
			t.Errorf("zsh script lacks %s:\n%s", want, script)
		}
	}
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("zsh is not installed under CI=true (.ci/run installs it)")
		}
		t.Skip("no zsh: syntax not checked")
	}
	cmd := exec.Command(zsh, "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}
