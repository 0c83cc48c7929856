// Package cli is the command-line frame the registrar and rsp binaries
// share: a table of subcommands, help (-h, --help, help [command]),
// version, suggestions for mistyped commands, flag parsing with one
// error line, and bash and zsh completion generated from the same table.
//
// Exit codes: 0 success (help included), 1 the command failed, 2 it was
// used wrongly (unknown command, bad flag, missing argument).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/agnivade/levenshtein"
)

// Version and Commit are set at build time (-ldflags -X); Commit falls
// back to the VCS revision the Go toolchain stamps into the binary.
var (
	Version = "dev"
	Commit  = ""
)

// Stdout and Stderr are where help and errors go (tests replace them).
var (
	Stdout io.Writer = os.Stdout
	Stderr io.Writer = os.Stderr
)

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	// Run runs the command with the arguments after its name and returns
	// the exit code. It parses its flags with Parse (or ParseInterleaved).
	Run func(args []string) int
	// Subcommands are the words Run takes first ("raft peers"), for help
	// and completion.
	Subcommands []string
}

// App is a binary: its name, what it is, its commands.
type App struct {
	Name     string
	Summary  string
	Commands []Command
	// Version is the version to print (default: Version).
	Version string
	// Protocols are lines naming the protocol and format versions the
	// binary speaks, printed by `version`.
	Protocols []string
}

func (a *App) version() string {
	if a.Version != "" {
		return a.Version
	}
	return Version
}

func (a *App) lookup(name string) (Command, bool) {
	for _, c := range a.Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// names are every command word, the built-in ones included.
func (a *App) names() []string {
	var ns []string
	for _, c := range a.Commands {
		ns = append(ns, c.Name)
	}
	ns = append(ns, "completion", "help", "version")
	sort.Strings(ns)
	return ns
}

// IsHelp reports the words that ask for help.
func IsHelp(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// Main runs the command args[0] names and returns the exit code.
func (a *App) Main(args []string) int {
	if len(args) == 0 {
		a.usage(Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		a.usage(Stdout)
		return 0
	case "help":
		return a.help(args[1:])
	case "version", "-version", "--version", "-v":
		a.printVersion(Stdout)
		return 0
	case "completion":
		return a.completion(args[1:])
	}
	c, ok := a.lookup(args[0])
	if !ok {
		return Unknown(a.Name, "command", args[0], a.names(), a.Name+" -h")
	}
	return c.Run(args[1:])
}

// help runs `help [command [subcommand]]`.
func (a *App) help(args []string) int {
	if len(args) == 0 {
		a.usage(Stdout)
		return 0
	}
	switch args[0] {
	case "help":
		a.usage(Stdout)
		return 0
	case "version":
		fmt.Fprintf(Stdout, "usage: %s version\n\nPrints the version, the commit, the Go version and the protocol versions.\n", a.Name)
		return 0
	case "completion":
		fmt.Fprintf(Stdout, "usage: %s completion bash|zsh\n\n%s", a.Name, completionHelp(a.Name))
		return 0
	}
	c, ok := a.lookup(args[0])
	if !ok {
		return Unknown(a.Name+" help", "command", args[0], a.names(), a.Name+" -h")
	}
	sub := args[1:]
	if len(sub) > 0 && !strings.HasPrefix(sub[0], "-") && len(c.Subcommands) > 0 {
		return c.Run([]string{sub[0], "-h"})
	}
	return c.Run([]string{"-h"})
}

func (a *App) usage(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nusage: %s <command> [flags] [args]\n\ncommands:\n", a.Name, a.Summary, a.Name)
	cs := append([]Command(nil), a.Commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	width := len("completion")
	for _, c := range cs {
		width = max(width, len(c.Name))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "  %-*s  %s\n", width, "completion", "print a bash or zsh completion script")
	fmt.Fprintf(w, "  %-*s  %s\n", width, "help", "show the help of a command")
	fmt.Fprintf(w, "  %-*s  %s\n", width, "version", "print the version")
	fmt.Fprintf(w, "\nrun '%s help <command>' or '%s <command> -h' for the flags of a command\n", a.Name, a.Name)
}

func (a *App) printVersion(w io.Writer) {
	fmt.Fprintf(w, "%s %s\n", a.Name, a.version())
	fmt.Fprintf(w, "commit:    %s\n", commit())
	fmt.Fprintf(w, "go:        %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for i, p := range a.Protocols {
		label := ""
		if i == 0 {
			label = "protocols:"
		}
		fmt.Fprintf(w, "%-10s %s\n", label, p)
	}
}

// commit is Commit, else the revision stamped by the Go toolchain, else
// "unknown".
func commit() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

// ModuleVersion is the version of a dependency linked into the binary
// ("" when unknown).
func ModuleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return ""
}

// Unknown reports an unknown word (a command, a subcommand) with the
// nearest known one and a pointer at the help, and returns 2.
func Unknown(prog, what, got string, known []string, helpCmd string) int {
	msg := fmt.Sprintf("%s: unknown %s %q", prog, what, got)
	if s := Suggest(got, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	fmt.Fprintln(Stderr, msg)
	fmt.Fprintf(Stderr, "run '%s' for usage\n", helpCmd)
	return 2
}

// Suggest returns the known word nearest to got: one that starts with it,
// or one at most EditLimit(got) edits away. "" when none is close.
func Suggest(got string, known []string) string {
	if got == "" {
		return ""
	}
	best, bestD := "", 1<<30
	limit := EditLimit(got)
	for _, k := range known {
		if strings.HasPrefix(k, got) && len(got) >= 2 {
			return k
		}
		if d := levenshtein.ComputeDistance(got, k); d <= limit && d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// EditLimit is how many edits (Levenshtein: a swap of two letters is two)
// a typo of word may have: 1 for short words, 2 from 4 letters, 3 from 9.
func EditLimit(word string) int {
	switch n := len(word); {
	case n < 4:
		return 1
	case n < 9:
		return 2
	}
	return 3
}

// flagSink, when set, receives every flag set Parse sees instead of
// parsing it (completion generation runs each command that way).
var flagSink func(fs *flag.FlagSet)

// Parse parses args into fs. ok is false when the command must return
// code at once: 0 after -h (the usage on stdout), 2 after a bad flag (the
// error and a pointer at -h on stderr). The flag set's output is stderr
// afterwards, so the command's own usage errors go there.
func Parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if flagSink != nil {
		flagSink(fs)
		return 0, false
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	return check(fs, err)
}

// ParseInterleaved parses flags that may come before or after the
// positional arguments ("restore FILE -data-dir DIR") and returns the
// positional ones.
func ParseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	if flagSink != nil {
		flagSink(fs)
		return nil, 0, false
	}
	fs.SetOutput(io.Discard)
	for {
		if err := fs.Parse(args); err != nil {
			code, ok = check(fs, err)
			return nil, code, ok
		}
		rest := fs.Args()
		if len(rest) == 0 {
			code, ok = check(fs, nil)
			return pos, code, ok
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func check(fs *flag.FlagSet, err error) (int, bool) {
	switch {
	case err == nil:
		fs.SetOutput(Stderr)
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(Stdout)
		if fs.Usage != nil {
			fs.Usage()
		} else {
			fmt.Fprintf(Stdout, "usage: %s [flags]\n\nflags:\n", fs.Name())
			fs.PrintDefaults()
		}
		fs.SetOutput(Stderr)
		return 0, false
	default:
		fs.SetOutput(Stderr)
		fmt.Fprintf(Stderr, "%s: %v\n", fs.Name(), err)
		fmt.Fprintf(Stderr, "run '%s -h' for usage\n", fs.Name())
		return 2, false
	}
}

// UsageError reports a wrong use other than a bad flag (a missing
// argument, too many) like Parse does, and returns 2.
func UsageError(fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(Stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fmt.Fprintf(Stderr, "run '%s -h' for usage\n", fs.Name())
	return 2
}

// SetUsage gives fs a usage text: the synopsis lines, a description, then
// the flags.
func SetUsage(fs *flag.FlagSet, text string) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), strings.TrimRight(text, "\n"))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
}

// Help prints fs's usage on stdout and returns 0 (for commands that see
// -h before their flags, such as a mode word).
func Help(fs *flag.FlagSet) int {
	_, _ = check(fs, flag.ErrHelp)
	return 0
}
