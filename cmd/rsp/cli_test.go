package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Ensure the rsp binary's help, version, typo and exit-code behaviour:
// help on stdout with 0, usage errors on stderr with 2, a flag error once
// with one pointer at -h.
func TestCLI_Rsp(t *testing.T) {
	bin := filepath.Join(registrartest.BinDir(t), "rsp")
	type tcase struct {
		args           []string
		code           int
		stdout, stderr string
		maxErrLines    int
	}
	cases := []tcase{
		{args: nil, code: 2, stderr: "usage: rsp <command>"},
		{args: []string{"-h"}, code: 0, stdout: "commands:"},
		{args: []string{"--help"}, code: 0, stdout: "commands:"},
		{args: []string{"help"}, code: 0, stdout: "commands:"},
		{args: []string{"version"}, code: 0, stdout: "protocols: ASAP (RFC 5352)"},
		{args: []string{"-version"}, code: 0, stdout: "commit:"},
		{args: []string{"sreve"}, code: 2, stderr: "rsp: unknown command \"sreve\"; did you mean \"serve\"?\nrun 'rsp -h' for usage\n", maxErrLines: 2},
		{args: []string{"resolv"}, code: 2, stderr: `did you mean "resolve"?`},
		{args: []string{"bench"}, code: 2, stderr: "want the mode first"},
		{args: []string{"bench", "registr"}, code: 2, stderr: `unknown mode "registr"; did you mean "register"?`},
		{args: []string{"bench", "-h"}, code: 0, stdout: "usage: rsp bench register|resolve"},
		{args: []string{"help", "bench", "register"}, code: 0, stdout: "usage: rsp bench"},
		{args: []string{"resolve"}, code: 2, stderr: "rsp resolve: want one pool HANDLE", maxErrLines: 2},
		{args: []string{"connect"}, code: 2, stderr: "rsp connect: want one pool HANDLE", maxErrLines: 2},
		{args: []string{"decode"}, code: 2, stderr: "rsp decode: want one HEX message", maxErrLines: 2},
		{args: []string{"serve"}, code: 2, stderr: "-pool is required"},
		{args: []string{"completion", "bash"}, code: 0, stdout: "complete -F _rsp rsp"},
		{args: []string{"completion", "zsh"}, code: 0, stdout: "#compdef rsp"},
	}
	for _, cmd := range []string{"serve", "resolve", "connect", "decode", "encode", "bench register"} {
		w := strings.Fields(cmd)
		name := "rsp " + w[0]
		cases = append(cases,
			tcase{args: append(w[:1:1], "-h"), code: 0, stdout: "usage: " + name},
			tcase{args: append(w[:1:1], "--help"), code: 0, stdout: "usage: " + name},
			tcase{args: append([]string{"help"}, w[0]), code: 0, stdout: "usage: " + name},
			tcase{args: append(w, "-no-such-flag"), code: 2, maxErrLines: 2,
				stderr: name + ": flag provided but not defined: -no-such-flag\nrun '" + name + " -h' for usage\n"})
	}
	for _, tc := range cases {
		cmd := exec.Command(bin, tc.args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		name := "rsp " + strings.Join(tc.args, " ")
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", name, code, tc.code, o.String(), e.String())
			continue
		}
		if tc.stdout != "" && !strings.Contains(o.String(), tc.stdout) {
			t.Errorf("%s: stdout lacks %q:\n%s", name, tc.stdout, o.String())
		}
		if tc.stderr != "" && !strings.Contains(e.String(), tc.stderr) {
			t.Errorf("%s: stderr lacks %q:\n%s", name, tc.stderr, e.String())
		}
		if tc.code == 0 && e.Len() > 0 {
			t.Errorf("%s: stderr should be empty:\n%s", name, e.String())
		}
		if n := strings.Count(e.String(), "\n"); tc.maxErrLines > 0 && n > tc.maxErrLines {
			t.Errorf("%s: %d lines on stderr, want at most %d:\n%s", name, n, tc.maxErrLines, e.String())
		}
	}
}
