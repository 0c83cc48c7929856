package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// repoRoot is the checkout's top directory (this package is cmd/registrar).
const repoRoot = "../.."

// needTool finds a program the deployment checks need: under CI=true its
// absence is a failure (.ci/run installs it), elsewhere the test skips.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed under CI=true (.ci/run installs the Debian package %s)", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
	return p
}

// installTree runs `make install` into a fresh prefix and returns it with
// the files installed, relative to it.
func installTree(t *testing.T, vars ...string) (root string, files []string) {
	t.Helper()
	registrartest.BinDir(t) // an end-to-end test: runs under `make test`
	tmp := t.TempDir()
	args := append([]string{"-C", repoRoot, "--no-print-directory", "install", "BIN=" + filepath.Join(tmp, "bin")}, vars...)
	for i, v := range args {
		args[i] = strings.ReplaceAll(v, "$TMP", tmp)
	}
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	root = filepath.Join(tmp, "root")
	err = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return root, files
}

// Ensure `make install` with DESTDIR and PREFIX puts the binaries, the
// systemd unit (with its paths filled in), the sample config and the
// completions where a package wants them, and nothing else.
func TestInstall_DestdirTree(t *testing.T) {
	root, files := installTree(t, "DESTDIR=$TMP/root", "PREFIX=/usr", "SYSCONFDIR=/etc")
	want := []string{
		"etc/registrar/registrar.json",
		"usr/bin/registrar",
		"usr/bin/rsp",
		"usr/lib/systemd/system/registrar.service",
		"usr/share/bash-completion/completions/registrar",
		"usr/share/bash-completion/completions/rsp",
		"usr/share/zsh/site-functions/_registrar",
		"usr/share/zsh/site-functions/_rsp",
	}
	if strings.Join(files, "\n") != strings.Join(want, "\n") {
		t.Errorf("installed:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/registrar.service"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(unit), "@") && regexp.MustCompile(`@[A-Z]+@`).Match(unit) {
		t.Errorf("the unit still has placeholders:\n%s", unit)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/registrar agent -config /etc/registrar/registrar.json\n") {
		t.Errorf("the unit's ExecStart does not use the installed paths:\n%s", unit)
	}
	for _, exe := range []string{"usr/bin/registrar", "usr/bin/rsp"} {
		fi, err := os.Stat(filepath.Join(root, exe))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable: %v %v", exe, fi.Mode(), err)
		}
		out, err := exec.Command(filepath.Join(root, exe), "version").Output()
		if err != nil || !strings.Contains(string(out), "commit:") {
			t.Errorf("%s version: %v\n%s", exe, err, out)
		}
	}
	// The installed sample config is valid.
	out, err := exec.Command(filepath.Join(root, "usr/bin/registrar"), "agent", "-config", filepath.Join(root, "etc/registrar/registrar.json"), "-validate").CombinedOutput()
	if err != nil {
		t.Errorf("the installed config does not validate: %v\n%s", err, out)
	}
	// A second install keeps an edited config.
	cfg := filepath.Join(root, "etc/registrar/registrar.json")
	if err := os.WriteFile(cfg, []byte(`{"log_level": "debug"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Dir(root)
	if out, err := exec.Command("make", "-C", repoRoot, "--no-print-directory", "install", "BIN="+filepath.Join(tmp, "bin"),
		"DESTDIR="+root, "PREFIX=/usr", "SYSCONFDIR=/etc").CombinedOutput(); err != nil {
		t.Fatalf("second make install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != `{"log_level": "debug"}` {
		t.Errorf("make install overwrote the edited config: %s", b)
	}
}

// Ensure the installed systemd unit passes `systemd-analyze verify` with
// no complaint at all (it exits 0 even for unknown keys, so any output
// fails the test).
func TestInstall_SystemdUnitVerifies(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "systemd")
	// PREFIX inside the temporary tree (no DESTDIR), so the unit's
	// ExecStart names a binary that exists.
	root, _ := installTree(t, "PREFIX=$TMP/root")
	unit := filepath.Join(root, "lib/systemd/system/registrar.service")
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	b, _ := os.ReadFile(unit)
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "-validate", "StateDirectory=registrar"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
}

// dockerInstr is one instruction of a Dockerfile.
type dockerInstr struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile splits a Dockerfile into instructions (comments
// dropped, continuation lines joined); it fails on lines that are no
// instruction.
func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := map[string]bool{"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true, "ADD": true, "COPY": true,
		"ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true, "ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true}
	var out []dockerInstr
	var cur *dockerInstr
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if cur == nil && (trim == "" || strings.HasPrefix(trim, "#")) {
			continue
		}
		cont := strings.HasSuffix(trim, "\\")
		text := strings.TrimSuffix(trim, "\\")
		if cur == nil {
			cmd, args, _ := strings.Cut(text, " ")
			if !known[strings.ToUpper(cmd)] {
				t.Fatalf("%s:%d: %q is not a Dockerfile instruction", path, n, cmd)
			}
			cur = &dockerInstr{line: n, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + text
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Fatalf("%s: ends in a continuation line", path)
	}
	return out
}

// Ensure the container recipe is a well-formed multi-stage build: a build
// stage on the Go image, a final stage on another base that copies only
// the binaries from it, runs unprivileged, starts the agent in exec form
// with a config that validates, and copies only files that exist. Lints
// with hadolint too where it is installed (it is not a Debian package).
func TestContainerRecipe(t *testing.T) {
	path := filepath.Join(repoRoot, "Dockerfile")
	ins := parseDockerfile(t, path)
	var stages []string
	final := ""
	user, entry, exposes := "", "", ""
	copiedFromBuild := false
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			if len(f) != 3 || !strings.EqualFold(f[1], "AS") {
				t.Errorf("line %d: FROM %s: name every stage (FROM image AS name)", in.line, in.args)
				continue
			}
			if strings.HasSuffix(f[0], ":latest") || !strings.Contains(f[0], ":") {
				t.Errorf("line %d: %s: pin the image's tag", in.line, f[0])
			}
			stages = append(stages, f[2])
			final = f[0]
			user, entry = "", ""
		case "COPY":
			if strings.Contains(in.args, "--from=") {
				m := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.args)
				if len(stages) < 2 || m[1] != stages[0] {
					t.Errorf("line %d: COPY --from=%s: want the build stage %v", in.line, m[1], stages)
				}
				copiedFromBuild = true
				continue
			}
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("line %d: COPY %s: no such file in the repository", in.line, src)
				}
				if strings.HasSuffix(src, ".json") {
					if _, err := registrar.ParseAgentArgs([]string{"-config", filepath.Join(repoRoot, src)}); err != nil {
						t.Errorf("line %d: the image's config %s does not validate: %v", in.line, src, err)
					}
				}
			}
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "EXPOSE":
			exposes += " " + in.args
		}
	}
	if len(stages) < 2 {
		t.Fatalf("stages %v: want a build stage and a run stage", stages)
	}
	if strings.HasPrefix(final, "golang") {
		t.Errorf("the final stage runs on %s: want a small base without the toolchain", final)
	}
	if !copiedFromBuild {
		t.Error("the final stage copies nothing from the build stage")
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("the final stage runs as %q: want an unprivileged user", user)
	}
	if !strings.HasPrefix(entry, `["/usr/local/bin/registrar"`) {
		t.Errorf("ENTRYPOINT %s: want the exec form of the registrar", entry)
	}
	for _, p := range []string{"3863/tcp", "9901/tcp", "8863/tcp", "7946/udp", "7947/tcp"} {
		if !strings.Contains(exposes, p) {
			t.Errorf("EXPOSE lacks %s", p)
		}
	}
	if hadolint, err := exec.LookPath("hadolint"); err == nil {
		if out, err := exec.Command(hadolint, path).CombinedOutput(); err != nil {
			t.Errorf("hadolint: %v\n%s", err, out)
		}
	} else {
		t.Log("hadolint is not installed: the recipe was checked by this test's own parser only")
	}
}
