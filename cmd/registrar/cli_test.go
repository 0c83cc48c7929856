package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// runBin runs a built binary and returns its exit code and output.
func runBin(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return code, o.String(), e.String()
}

// cliCase is one command line and what it must do.
type cliCase struct {
	args       []string
	code       int
	stdout     []string // substrings of standard output
	stderr     []string // substrings of standard error
	quietOut   bool     // nothing on standard output
	quietErr   bool     // nothing on standard error
	notStderr  []string
	maxErrLine int // at most this many lines on standard error (0: no bound)
}

func checkCLI(t *testing.T, bin string, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		name := filepath.Base(bin) + " " + strings.Join(tc.args, " ")
		code, out, errOut := runBin(t, bin, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", name, code, tc.code, out, errOut)
			continue
		}
		for _, w := range tc.stdout {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", name, w, out)
			}
		}
		for _, w := range tc.stderr {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", name, w, errOut)
			}
		}
		for _, w := range tc.notStderr {
			if strings.Contains(errOut, w) {
				t.Errorf("%s: stderr has %q:\n%s", name, w, errOut)
			}
		}
		if tc.quietOut && out != "" {
			t.Errorf("%s: stdout should be empty:\n%s", name, out)
		}
		if tc.quietErr && errOut != "" {
			t.Errorf("%s: stderr should be empty:\n%s", name, errOut)
		}
		if n := strings.Count(errOut, "\n"); tc.maxErrLine > 0 && n > tc.maxErrLine {
			t.Errorf("%s: %d lines on stderr, want at most %d:\n%s", name, n, tc.maxErrLine, errOut)
		}
	}
}

// flagErr is a flag error: the error once, one line pointing at -h.
func flagErr(cmd, msg string) cliCase {
	return cliCase{args: append(strings.Fields(cmd)[1:], "-no-such-flag"), code: 2, quietOut: true, maxErrLine: 2,
		stderr: []string{cmd + ": flag provided but not defined: -no-such-flag\nrun '" + cmd + " -h' for usage\n"}}
}

// Ensure the registrar binary's help, version, typo and exit-code
// behaviour: help on stdout with 0, usage errors on stderr with 2, a flag
// error once with one pointer at -h.
func TestCLI_Registrar(t *testing.T) {
	bin := filepath.Join(registrartest.BinDir(t), "registrar")
	cases := []cliCase{
		{args: nil, code: 2, quietOut: true, stderr: []string{"usage: registrar <command>"}},
		{args: []string{"-h"}, code: 0, quietErr: true, stdout: []string{"commands:", "agent", "snapshot", "completion", "version"}},
		{args: []string{"--help"}, code: 0, quietErr: true, stdout: []string{"commands:"}},
		{args: []string{"help"}, code: 0, quietErr: true, stdout: []string{"commands:"}},
		{args: []string{"version"}, code: 0, quietErr: true, stdout: []string{"registrar ", "commit:", "go:        go1.", "protocols: ASAP (RFC 5352) and ENRP (RFC 5353)", "snapshot format v1", "raft protocol v3"}},
		{args: []string{"-version"}, code: 0, quietErr: true, stdout: []string{"commit:"}},
		{args: []string{"--version"}, code: 0, quietErr: true, stdout: []string{"commit:"}},
		{args: []string{"agnet"}, code: 2, quietOut: true, maxErrLine: 2, stderr: []string{`registrar: unknown command "agnet"; did you mean "agent"?`, "run 'registrar -h' for usage"}},
		{args: []string{"snapshto"}, code: 2, stderr: []string{`did you mean "snapshot"?`}},
		{args: []string{"frobnicate"}, code: 2, notStderr: []string{"did you mean"}},
		{args: []string{"help", "agnet"}, code: 2, stderr: []string{`did you mean "agent"?`}},
		{args: []string{"raft", "peer"}, code: 2, stderr: []string{`unknown subcommand "peer"; did you mean "peers"?`}},
		{args: []string{"snapshot", "inspekt"}, code: 2, stderr: []string{`did you mean "inspect"?`}},
		{args: []string{"raft"}, code: 2, stderr: []string{"want a subcommand"}},
		{args: []string{"snapshot"}, code: 2, stderr: []string{"want a subcommand"}},
		{args: []string{"completion"}, code: 2, stderr: []string{"want bash or zsh"}},
		{args: []string{"completion", "bash"}, code: 0, quietErr: true, stdout: []string{"complete -F _registrar registrar", "-data-dir", "remove-peer"}},
		{args: []string{"completion", "zsh"}, code: 0, quietErr: true, stdout: []string{"#compdef registrar", "_registrar_raft_remove_peer"}},
		{args: []string{"help", "completion"}, code: 0, stdout: []string{"source <(registrar completion bash)"}},
		{args: []string{"help", "version"}, code: 0, stdout: []string{"usage: registrar version"}},
		{args: []string{"pools", "-http", "127.0.0.1:1", "a", "b"}, code: 2, stderr: []string{"want at most one pool HANDLE"}, maxErrLine: 2},
		{args: []string{"raft", "remove-peer"}, code: 2, stderr: []string{"want the ID"}, maxErrLine: 2},
		{args: []string{"snapshot", "inspect"}, code: 2, stderr: []string{"want one snapshot FILE"}, maxErrLine: 2},
		{args: []string{"agent", "-keepalive-interval", "5"}, code: 2, quietOut: true, maxErrLine: 2,
			stderr: []string{`registrar agent: invalid value "5" for flag -keepalive-interval`, "run 'registrar agent -h' for usage"}},
		{args: []string{"agent", "stray"}, code: 2, stderr: []string{"unexpected arguments"}},
		{args: []string{"agent", "-validate"}, code: 0, stdout: []string{"configuration is valid (the flags)"}},
		{args: []string{"agent", "-validate", "-log-level", "loud"}, code: 2, stderr: []string{`log_level: "loud" is not one of`}},
		{args: []string{"status", "-http", "127.0.0.1:1"}, code: 1, stderr: []string{"cannot reach the registrar's admin API at 127.0.0.1:1"}},
	}
	// Every command and subcommand: -h, --help and help CMD print its
	// usage on stdout and exit 0; a bad flag is one error and one hint.
	for _, cmd := range []string{"agent", "status", "pools", "members", "leave"} {
		cases = append(cases,
			cliCase{args: []string{cmd, "-h"}, code: 0, quietErr: true, stdout: []string{"usage: registrar " + cmd}},
			cliCase{args: []string{cmd, "--help"}, code: 0, quietErr: true, stdout: []string{"usage: registrar " + cmd}},
			cliCase{args: []string{"help", cmd}, code: 0, quietErr: true, stdout: []string{"usage: registrar " + cmd}},
			flagErr("registrar "+cmd, ""))
	}
	for _, sub := range []string{"raft peers", "raft remove-peer", "snapshot save", "snapshot inspect", "snapshot restore"} {
		w := strings.Fields(sub)
		cases = append(cases,
			cliCase{args: append(w, "-h"), code: 0, quietErr: true, stdout: []string{"usage:", "registrar " + sub}},
			cliCase{args: append([]string{"help"}, w...), code: 0, quietErr: true, stdout: []string{"registrar " + sub}},
			flagErr("registrar "+sub, ""))
	}
	cases = append(cases,
		cliCase{args: []string{"raft", "-h"}, code: 0, stdout: []string{"registrar raft peers"}},
		cliCase{args: []string{"snapshot", "-h"}, code: 0, stdout: []string{"registrar snapshot save"}},
		cliCase{args: []string{"help", "raft"}, code: 0, stdout: []string{"registrar raft peers"}},
	)
	checkCLI(t, bin, cases)
}

// Ensure the bash completion of the built binary completes its commands,
// subcommands and flags.
func TestCLI_BashCompletion(t *testing.T) {
	bin := filepath.Join(registrartest.BinDir(t), "registrar")
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, script, _ := runBin(t, bin, "completion", "bash")
	for _, tc := range []struct {
		line string // the words, the last one being completed
		want string
	}{
		{"registrar ag", "agent"},
		{"registrar raft re", "remove-peer"},
		{"registrar snapshot ", "save inspect restore"},
		{"registrar agent -log-l", "-log-level"},
		{"registrar snapshot restore -da", "-data-dir"},
		{"registrar status -", "-ca-file -client-cert -client-key -http -json -token"},
	} {
		words := strings.Split(tc.line, " ")
		prog := script + "\nCOMP_WORDS=(" + quoteWords(words) + "); COMP_CWORD=" + strconv.Itoa(len(words)-1) +
			"; _registrar; echo \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("completing %q: got %q, want %q", tc.line, got, tc.want)
		}
	}
}

func quoteWords(ws []string) string {
	var q []string
	for _, w := range ws {
		q = append(q, "'"+w+"'")
	}
	return strings.Join(q, " ")
}
