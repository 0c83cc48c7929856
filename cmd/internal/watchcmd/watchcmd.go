// Package watchcmd is the watch command that `rsp watch` and `registrar
// watch` share: it follows a registrar's change stream and prints each
// event as a line (or its JSON), resuming after a broken connection from
// the last raft index it completed.
package watchcmd

import (
	"context"
	"flag"
	"fmt"

	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/registrar/watchclient"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// DefaultHTTP is the admin API address when neither -http nor
// REGISTRAR_HTTP_ADDR says one.
const DefaultHTTP = "127.0.0.1:8863"

// Run is the command: prog is "rsp" or "registrar".
func Run(prog string, args []string) int {
	fs := flag.NewFlagSet(prog+" watch", flag.ContinueOnError)
	cli.SetUsage(fs, `usage: `+prog+` watch [-http ADDR] [-token T] [-ca-file F] [-json] [-index N] [-n COUNT] [POOL]

Follows a registrar's change stream (GET /v1/watch) and prints one line per
event: PEs registered, updated and removed (with the reason), pools created
and removed, leader changes and members joining, failing or leaving; with
POOL only that pool's events. Each line starts with the event's raft index;
-index N resumes after index N. A broken connection is resumed from the last
index completed; when the registrar no longer holds that history it says
so (stream.resync) and the watch goes on from now. Stream notices go to
standard error; -json prints every event as one JSON object a line.`)
	addr := os.Getenv("REGISTRAR_HTTP_ADDR")
	if addr == "" {
		addr = DefaultHTTP
	}
	fs.StringVar(&addr, "http", addr, "admin API address of the registrar (env REGISTRAR_HTTP_ADDR)")
	token := fs.String("token", os.Getenv("REGISTRAR_HTTP_TOKEN"), "admin API token, read role (env REGISTRAR_HTTP_TOKEN)")
	caFile := fs.String("ca-file", os.Getenv("REGISTRAR_CA_FILE"), "CA certificate to check the admin API's HTTPS certificate with; implies https (env REGISTRAR_CA_FILE)")
	clientCert := fs.String("client-cert", os.Getenv("REGISTRAR_CLIENT_CERT"), "client certificate for an admin API with verify_incoming (env REGISTRAR_CLIENT_CERT)")
	clientKey := fs.String("client-key", os.Getenv("REGISTRAR_CLIENT_KEY"), "the key of -client-cert (env REGISTRAR_CLIENT_KEY)")
	asJSON := fs.Bool("json", false, "print each event as a JSON line")
	index := fs.Int64("index", -1, "resume after this raft index (default: from now)")
	count := fs.Int("n", 0, "stop after this many handlespace, leader and member events (0: run until interrupted)")
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return cli.UsageError(fs, "want at most one POOL, got %q", pos)
	}
	pool := ""
	if len(pos) == 1 {
		pool = pos[0]
	}
	useTLS := *caFile != "" || *clientCert != ""
	base := addr
	if !strings.Contains(base, "://") {
		if useTLS {
			base = "https://" + base
		} else {
			base = "http://" + base
		}
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if useTLS {
		st, err := tlsutil.NewStore(tlsutil.Files{Cert: *clientCert, Key: *clientKey, CA: *caFile})
		if err != nil {
			fmt.Fprintf(cli.Stderr, "%s watch: %v (-ca-file, -client-cert, -client-key)\n", prog, err)
			return 1
		}
		tr.TLSClientConfig = st.ClientConfig("")
	}
	client := &http.Client{Transport: &withToken{token: *token, next: tr}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var from uint64
	if *index >= 0 {
		from = uint64(*index)
	}
	seen := 0
	done := fmt.Errorf("done")
	err := watchclient.Watch(ctx, client, base, pool, from, *index >= 0, 200*time.Millisecond,
		func(e *watchclient.Event) error {
			stream := strings.HasPrefix(e.Type, "stream.")
			switch {
			case *asJSON:
				fmt.Fprintf(cli.Stdout, "%s\n", e.Raw)
			case stream:
				fmt.Fprintf(cli.Stderr, "%s watch: %s\n", prog, Line(e))
			default:
				fmt.Fprintln(cli.Stdout, Line(e))
			}
			if !stream {
				if seen++; *count > 0 && seen >= *count {
					return watchclient.Fail(done)
				}
			}
			return nil
		},
		func(err error) { fmt.Fprintf(cli.Stderr, "%s watch: %v (resuming)\n", prog, err) })
	if err != nil && err != done {
		fmt.Fprintf(cli.Stderr, "%s watch: %v\n", prog, err)
		return 1
	}
	return 0
}

// withToken sends the admin API token with every request.
type withToken struct {
	token string
	next  http.RoundTripper
}

func (t *withToken) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.next.RoundTrip(req)
}

// Line is an event as one line: index, type, pool, then key=value.
func Line(e *watchclient.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Index, e.Type)
	if e.Pool != "" {
		fmt.Fprintf(&b, " %s", e.Pool)
	}
	if p := e.PE; p != nil {
		fmt.Fprintf(&b, " pe=%s home=%s %s %s port=%d policy=%s load=%d", p.ID, p.Home, p.Transport,
			strings.Join(p.Addresses, ","), p.Port, p.Policy.Type, p.Policy.Load)
	}
	if l := e.Leader; l != nil {
		id := l.ID
		if id == "" {
			id = "none"
		}
		fmt.Fprintf(&b, " leader=%s term=%d", id, l.Term)
	}
	if m := e.Member; m != nil {
		fmt.Fprintf(&b, " member=%s name=%s", m.ID, m.Name)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", e.Reason)
	}
	return b.String()
}
