package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/snapshot"
)

const snapshotUsage = `usage:
  registrar snapshot save [-http ADDR] FILE
        save a verified snapshot of a running cluster's handlespace (taken at the raft leader)
  registrar snapshot inspect [-json] FILE
        verify a snapshot file and show its metadata and pools
  registrar snapshot restore FILE -data-dir DIR
        offline: prepare a new data directory from which a new cluster starts with the snapshot
  registrar snapshot restore -online FILE [-http ADDR] [-yes]
        replace the handlespace of a running cluster (asks for confirmation)
see docs/snapshots.md`

func runSnapshot(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(cli.Stderr, "registrar snapshot: want a subcommand: save, inspect or restore")
		fmt.Fprintln(cli.Stderr, "run 'registrar snapshot -h' for usage")
		return 2
	}
	switch args[0] {
	case "save":
		return runSnapshotSave(args[1:])
	case "inspect":
		return runSnapshotInspect(args[1:])
	case "restore":
		return runSnapshotRestore(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(cli.Stdout, snapshotUsage)
		return 0
	}
	return cli.Unknown("registrar snapshot", "subcommand", args[0], []string{"save", "inspect", "restore"}, "registrar snapshot -h")
}

func newSnapshotFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("registrar snapshot "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), snapshotUsage)
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// ---- progress on a terminal ----

// stderrIsTerminal reports whether progress may be drawn: only when
// standard error is a terminal, so scripts and logs stay quiet.
func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress draws "label  12.3 MB / 70.1 MB (17%)" on standard error,
// at most five times a second.
type progress struct {
	label string
	total int64
	n     int64
	on    bool
	last  time.Time
	drawn bool
}

func newProgress(label string, total int64) *progress {
	return &progress{label: label, total: total, on: stderrIsTerminal()}
}

func (p *progress) add(n int) {
	p.n += int64(n)
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	s := fmt.Sprintf("\r%s  %s", p.label, byteSize(p.n))
	if p.total > 0 {
		s += fmt.Sprintf(" / %s (%d%%)", byteSize(p.total), p.n*100/p.total)
	}
	fmt.Fprint(os.Stderr, s+"\033[K")
	p.drawn = true
}

// done clears the progress line.
func (p *progress) done() {
	if p.on && p.drawn {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}

func (p *progress) reader(r io.Reader) io.Reader { return &progressReader{r, p} }
func (p *progress) writer(w io.Writer) io.Writer { return &progressWriter{w, p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w *progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// ---- save ----

// The snapshot client has no overall timeout: a large snapshot takes as
// long as it takes; the server answers the headers within minutes.

func runSnapshotSave(args []string) int {
	var cf clientFlags
	fs := newSnapshotFlags("save")
	fs.StringVar(&cf.http, "http", defaultHTTP(), "admin API address of a registrar of the cluster (env REGISTRAR_HTTP_ADDR)")
	cf.bindAuth(fs)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return cli.UsageError(fs, "want one snapshot FILE, got %q", pos)
	}
	path := pos[0]
	req, err := cf.newRequest(http.MethodGet, "/v1/snapshot", nil)
	if err != nil {
		return fail("snapshot save", err)
	}
	hc, err := cf.client(0)
	if err != nil {
		return fail("snapshot save", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fail("snapshot save", unreachable(&cf, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("snapshot save", apiError(resp))
	}
	p := newProgress("saving "+path, resp.ContentLength)
	meta, err := snapshot.WriteFile(nil, path, func(w io.Writer) error {
		n, err := io.Copy(p.writer(w), resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("the registrar sent %d of %d bytes", n, resp.ContentLength)
		}
		if err != nil {
			return fmt.Errorf("download from %s: %w", cf.http, err)
		}
		return nil
	})
	p.done()
	if err != nil {
		return fail("snapshot save", err)
	}
	fi, _ := os.Stat(path)
	fmt.Printf("Saved %s: %s, %s, raft index %d (term %d), taken at registrar 0x%08x, %s, verified.\n",
		path, plural(meta.Pools, "pool"), plural(meta.PEs, "PE"), meta.RaftIndex, meta.RaftTerm, meta.RegistrarID, byteSize(fi.Size()))
	return 0
}

// ---- inspect ----

// inspectOutput is `snapshot inspect -json`.
type inspectOutput struct {
	File     string `json:"file"`
	Verified bool   `json:"verified"`
	snapshot.Summary
}

// summarizeFile verifies and summarises a snapshot file, with progress.
func summarizeFile(path, label string) (snapshot.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return snapshot.Summary{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	p := newProgress(label, size)
	s, err := snapshot.Summarize(bufio.NewReaderSize(f, 1<<20), func(n int64) { p.n = 0; p.add(int(n)) })
	p.done()
	if err != nil {
		return s, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return s, nil
}

func runSnapshotInspect(args []string) int {
	fs := newSnapshotFlags("inspect")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return cli.UsageError(fs, "want one snapshot FILE, got %q", pos)
	}
	path := pos[0]
	s, err := summarizeFile(path, "verifying "+path)
	if err != nil {
		return fail("snapshot inspect", err)
	}
	if *asJSON {
		printJSON(inspectOutput{File: path, Verified: true, Summary: s})
		return 0
	}
	m := s.Meta
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "File\t%s (%s)\n", path, byteSize(s.Size))
	fmt.Fprintf(w, "Verified\tyes (format, SHA-256 and counts)\n")
	fmt.Fprintf(w, "Format\tversion %d\n", m.FormatVersion)
	fmt.Fprintf(w, "Created\t%s\n", m.Created.UTC().Format(time.RFC3339))
	taken := "-"
	if m.RegistrarID != 0 {
		taken = fmt.Sprintf("registrar 0x%08x", m.RegistrarID)
		if m.Build != "" {
			taken += " (build " + m.Build + ")"
		}
	}
	fmt.Fprintf(w, "Taken by\t%s\n", taken)
	cluster := m.ClusterID
	if cluster == "" {
		cluster = "- (no cluster identity recorded)"
	}
	fmt.Fprintf(w, "Cluster\t%s\n", cluster)
	fmt.Fprintf(w, "Raft\tindex %d, term %d\n", m.RaftIndex, m.RaftTerm)
	fmt.Fprintf(w, "Content\t%s, %s\n", plural(m.Pools, "pool"), plural(m.PEs, "PE"))
	w.Flush()
	if len(s.Pools) == 0 {
		return 0
	}
	fmt.Println()
	w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POOL\tPOLICY\tTRANSPORT\tPES")
	for _, p := range s.Pools {
		h, _ := p.Handle.MarshalText()
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", h, p.Policy, p.Transport, p.PEs)
	}
	w.Flush()
	return 0
}

// ---- restore ----

func runSnapshotRestore(args []string) int {
	var cf clientFlags
	fs := newSnapshotFlags("restore")
	dataDir := fs.String("data-dir", "", "offline: the new (empty) data directory to prepare")
	online := fs.Bool("online", false, "replace the handlespace of the running cluster at -http")
	yes := fs.Bool("yes", false, "with -online: do not ask for confirmation (scripts)")
	fs.StringVar(&cf.http, "http", defaultHTTP(), "with -online: admin API address of a registrar of the cluster (env REGISTRAR_HTTP_ADDR)")
	cf.bindAuth(fs)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || (*online == (*dataDir != "")) {
		return cli.UsageError(fs, "give FILE and either -data-dir DIR (offline) or -online")
	}
	if *online {
		return restoreOnline(&cf, pos[0], *yes)
	}
	return restoreOffline(pos[0], *dataDir)
}

// restoreOffline prepares dir (new or empty) with the verified snapshot
// as PendingRestoreFile; nothing is left behind on failure.
func restoreOffline(path, dir string) int {
	ents, err := os.ReadDir(dir)
	created := false
	switch {
	case errors.Is(err, os.ErrNotExist):
		created = true
	case err != nil:
		return fail("snapshot restore", fmt.Errorf("data dir %s: %w", dir, err))
	case len(ents) > 0:
		return fail("snapshot restore", fmt.Errorf("data dir %s is not empty (%d entries): restore prepares a new data directory for a new cluster; give a new or empty one (to replace the handlespace of a running cluster, use -online)", dir, len(ents)))
	}
	s, err := summarizeFile(path, "verifying "+path)
	if err != nil {
		return fail("snapshot restore", err)
	}
	if created {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fail("snapshot restore", fmt.Errorf("data dir %s: %w", dir, err))
		}
	}
	cleanup := func() {
		if created {
			os.RemoveAll(dir)
		}
	}
	src, err := os.Open(path)
	if err != nil {
		cleanup()
		return fail("snapshot restore", fmt.Errorf("snapshot %s: %w", path, err))
	}
	defer src.Close()
	target := filepath.Join(dir, registrar.PendingRestoreFile)
	p := newProgress("copying to "+target, s.Size)
	_, err = snapshot.WriteFile(nil, target, func(w io.Writer) error {
		_, err := io.Copy(p.writer(w), src)
		return err
	})
	p.done()
	if err != nil {
		cleanup()
		return fail("snapshot restore", err)
	}
	fmt.Printf("Prepared %s with %s (%s, %s, created %s).\n", dir, path, plural(s.Meta.Pools, "pool"), plural(s.Meta.PEs, "PE"), s.Meta.Created.UTC().Format(time.RFC3339))
	fmt.Printf("Next: start the first registrar of the new cluster alone on it:\n\n    registrar agent -data-dir %s [other flags, but no -join and no -bootstrap-expect]\n\n", dir)
	fmt.Println("At its first start it installs the snapshot through raft (it logs \"handlespace restored from snapshot\").")
	fmt.Println("Then start the other registrars with new, empty data directories and -join: raft sends them the handlespace.")
	return 0
}

// confirm asks on the terminal; false when the answer is not "yes".
func confirm(prompt string) (bool, error) {
	fi, err := os.Stdin.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false, errors.New("refusing to replace the handlespace without confirmation: standard input is not a terminal; pass -yes in scripts")
	}
	fmt.Fprint(os.Stderr, prompt)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	return strings.TrimSpace(line) == "yes", nil
}

func restoreOnline(cf *clientFlags, path string, yes bool) int {
	s, err := summarizeFile(path, "verifying "+path)
	if err != nil {
		return fail("snapshot restore", err)
	}
	var st registrar.Status
	if err := cf.get("/v1/status", &st); err != nil {
		return fail("snapshot restore", err)
	}
	m := s.Meta
	fmt.Fprintf(os.Stderr, "WARNING: this replaces the whole handlespace of the running cluster of registrar %s (at %s),\n", st.ID, cf.http)
	fmt.Fprintf(os.Stderr, "         now %s and %s, with the snapshot %s:\n", plural(st.Pools, "pool"), plural(st.PEs, "PE"), path)
	fmt.Fprintf(os.Stderr, "         %s and %s, created %s at registrar 0x%08x (raft index %d).\n", plural(m.Pools, "pool"), plural(m.PEs, "PE"), m.Created.UTC().Format(time.RFC3339), m.RegistrarID, m.RaftIndex)
	fmt.Fprintln(os.Stderr, "         Every registration made since the snapshot is lost (those PEs must register again);")
	fmt.Fprintln(os.Stderr, "         PEs of the snapshot that are gone are removed when their keep-alives fail.")
	if !yes {
		ok, err := confirm("Type \"yes\" to replace the handlespace: ")
		if err != nil {
			return fail("snapshot restore", err)
		}
		if !ok {
			fmt.Fprintln(os.Stderr, "aborted: the handlespace is unchanged")
			return 1
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail("snapshot restore", fmt.Errorf("snapshot %s: %w", path, err))
	}
	defer f.Close()
	p := newProgress("uploading "+path, s.Size)
	req, err := cf.newRequest(http.MethodPut, "/v1/snapshot", p.reader(f))
	if err != nil {
		return fail("snapshot restore", err)
	}
	req.ContentLength = s.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	hc, err := cf.client(0)
	if err != nil {
		return fail("snapshot restore", err)
	}
	resp, err := hc.Do(req)
	p.done()
	if err != nil {
		return fail("snapshot restore", unreachable(cf, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("snapshot restore", apiError(resp))
	}
	var res registrar.SnapshotRestoreResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fail("snapshot restore", fmt.Errorf("reading the answer: %w", err))
	}
	fmt.Printf("Restored %s: the cluster's handlespace is now %s, %s (raft index %d).\n", path, plural(res.Snapshot.Pools, "pool"), plural(res.Snapshot.PEs, "PE"), res.RaftIndex)
	return 0
}
