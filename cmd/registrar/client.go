package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// defaultHTTP is the admin API address clients use: -http, else
// REGISTRAR_HTTP_ADDR, else the agent's default.
func defaultHTTP() string {
	if a := os.Getenv("REGISTRAR_HTTP_ADDR"); a != "" {
		return a
	}
	return registrar.DefaultConfig().HTTP
}

// clientFlags are the flags every API client command has.
type clientFlags struct {
	http string
	json bool
	clientAuth
}

// clientAuth is how a client proves itself to the admin API and checks
// it: a token, and for HTTPS the CA and an optional client certificate.
type clientAuth struct {
	token, caFile, clientCert, clientKey string
}

// Environment variables of the client flags, beside REGISTRAR_HTTP_ADDR.
const (
	envToken      = "REGISTRAR_HTTP_TOKEN"
	envCAFile     = "REGISTRAR_CA_FILE"
	envClientCert = "REGISTRAR_CLIENT_CERT"
	envClientKey  = "REGISTRAR_CLIENT_KEY"
)

func (c *clientFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.http, "http", defaultHTTP(), "admin API address of the registrar, [https://]host:port (env REGISTRAR_HTTP_ADDR)")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts")
	c.bindAuth(fs)
}

// bindAuth registers -token, -ca-file, -client-cert and -client-key.
func (c *clientAuth) bindAuth(fs *flag.FlagSet) {
	fs.StringVar(&c.token, "token", os.Getenv(envToken), "admin API token (env "+envToken+")")
	fs.StringVar(&c.caFile, "ca-file", os.Getenv(envCAFile), "CA certificate to check the admin API's HTTPS certificate with; implies https (env "+envCAFile+")")
	fs.StringVar(&c.clientCert, "client-cert", os.Getenv(envClientCert), "client certificate for an admin API with verify_incoming (env "+envClientCert+")")
	fs.StringVar(&c.clientKey, "client-key", os.Getenv(envClientKey), "the key of -client-cert (env "+envClientKey+")")
}

// tls reports whether the client speaks HTTPS without being told by the
// address (a CA or client certificate given).
func (c *clientAuth) tls() bool { return c.caFile != "" || c.clientCert != "" }

func (c *clientFlags) url(path string) string {
	base := c.http
	if !strings.Contains(base, "://") {
		if c.tls() {
			base = "https://" + base
		} else {
			base = "http://" + base
		}
	}
	return strings.TrimRight(base, "/") + path
}

// transport is the HTTP transport: TLS with the CA and the client
// certificate when given.
func (c *clientAuth) transport() (*http.Transport, error) {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 10 * time.Minute}
	if !c.tls() {
		return tr, nil
	}
	st, err := tlsutil.NewStore(tlsutil.Files{Cert: c.clientCert, Key: c.clientKey, CA: c.caFile})
	if err != nil {
		return nil, fmt.Errorf("%w (-ca-file, -client-cert, -client-key)", err)
	}
	tr.TLSClientConfig = st.ClientConfig("")
	return tr, nil
}

// newRequest builds a request with the token and, for one that changes
// something, a JSON content type (the admin API refuses form-like
// requests without a token: they could come from a browser on another
// site).
func (c *clientFlags) newRequest(method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, c.url(path), body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// client is an HTTP client for the admin API (timeout 0: none).
func (c *clientFlags) client(timeout time.Duration) (*http.Client, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}

// get fetches path into v; on failure it returns an error that says what
// to check.
func (c *clientFlags) get(path string, v any) error {
	return c.do(http.MethodGet, path, nil, v)
}

func (c *clientFlags) do(method, path string, body io.Reader, v any) error {
	req, err := c.newRequest(method, path, body)
	if err != nil {
		return err
	}
	client, err := c.client(30 * time.Second)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return unreachable(c, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return apiError(resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if raw, ok := v.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, v)
}

// apiError turns an error answer of the admin API into an error.
func apiError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e registrar.APIError
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return fmt.Errorf("%s %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
}

func unreachable(cf *clientFlags, err error) error {
	return fmt.Errorf("cannot reach the registrar's admin API at %s (is `registrar agent` running? set -http or REGISTRAR_HTTP_ADDR): %v", cf.http, err)
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "registrar %s: %v\n", cmd, err)
	return 1
}

func runStatus(args []string) int {
	var cf clientFlags
	fs := flag.NewFlagSet("registrar status", flag.ContinueOnError)
	cli.SetUsage(fs, `usage: registrar status [-http ADDR] [-json]

Shows a running registrar's ID, version, raft state and leader, handlespace
counts, addresses, uptime and the cluster's members.`)
	cf.bind(fs)
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
	}
	var s registrar.Status
	if err := cf.get("/v1/status", &s); err != nil {
		return fail("status", err)
	}
	if cf.json {
		printJSON(s)
		return 0
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "ID\t%s\n", s.ID)
	fmt.Fprintf(w, "Version\t%s\n", s.Version)
	leader := s.Raft.Leader
	if leader == "" {
		leader = "none"
	} else {
		leader = "0x" + s.Raft.LeaderID + " at " + leader
	}
	fmt.Fprintf(w, "Raft\t%s, leader %s, term %d, last index %d, applied %d\n", s.Raft.State, leader, s.Raft.Term, s.Raft.LastIndex, s.Raft.AppliedIndex)
	stale := ""
	if s.Stale {
		stale = " (STALE: no raft leader; registrations are refused)"
	}
	fmt.Fprintf(w, "Handlespace\t%s, %s, %d homed here%s\n", plural(s.Pools, "pool"), plural(s.PEs, "PE"), s.OwnedPEs, stale)
	fmt.Fprintf(w, "ASAP\t%s\n", strings.Join(s.Addresses.ASAP, " "))
	fmt.Fprintf(w, "ENRP\t%s\n", strings.Join(s.Addresses.ENRP, " "))
	fmt.Fprintf(w, "Raft address\t%s\n", s.Addresses.Raft)
	fmt.Fprintf(w, "Uptime\t%s\n", (time.Duration(s.UptimeSec) * time.Second).String())
	if s.FDLimit > 0 {
		fmt.Fprintf(w, "Open file limit\t%d (one per association)\n", s.FDLimit)
	}
	if len(s.Members) > 0 {
		alive := 0
		for _, m := range s.Members {
			if m.Status == "alive" {
				alive++
			}
		}
		fmt.Fprintf(w, "Members\t%s, %d alive\n", plural(len(s.Members), "registrar"), alive)
		for _, m := range s.Members {
			fmt.Fprintf(w, "\t%s %s %s (%s)\n", m.ID, m.Name, m.Status, role(m))
		}
	}
	w.Flush()
	return 0
}

func runPools(args []string) int {
	var cf clientFlags
	fs := flag.NewFlagSet("registrar pools", flag.ContinueOnError)
	cli.SetUsage(fs, `usage: registrar pools [-http ADDR] [-json] [HANDLE]

Lists the pools of the handlespace with their policy, transport and PE
count; with HANDLE, every PE of that pool (binary handles as 0x hex).`)
	cf.bind(fs)
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	switch fs.NArg() {
	case 0:
		var pools []registrar.PoolSummary
		if err := cf.get("/v1/pools", &pools); err != nil {
			return fail("pools", err)
		}
		if cf.json {
			printJSON(pools)
			return 0
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "POOL\tPOLICY\tTRANSPORT\tPES")
		for _, p := range pools {
			h, _ := p.Handle.MarshalText()
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", h, p.Policy, p.Transport, p.PEs)
		}
		w.Flush()
		return 0
	case 1:
		var d registrar.PoolDetail
		if err := cf.get("/v1/pools/"+url.PathEscape(fs.Arg(0)), &d); err != nil {
			return fail("pools", err)
		}
		if cf.json {
			printJSON(d)
			return 0
		}
		h, _ := d.Handle.MarshalText()
		fmt.Printf("Pool %s, policy %s (%s), %s\n", h, d.Policy, d.Policy.Description(), plural(len(d.PEs), "PE"))
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PE\tHOME\tTRANSPORT\tADDRESSES\tPORT\tPOLICY\tLIFETIME\tREGISTERED")
		for _, pe := range d.PEs {
			var addrs []string
			for _, a := range pe.Addresses {
				addrs = append(addrs, a.String())
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", pe.ID, pe.Home, pe.Transport, strings.Join(addrs, ","), pe.Port,
				policyText(pe.Policy), (time.Duration(pe.LifetimeMS) * time.Millisecond).String(), pe.Registered.Local().Format(time.DateTime))
		}
		w.Flush()
		return 0
	}
	return cli.UsageError(fs, "want at most one pool HANDLE, got %q", fs.Args())
}

// plural writes a count with its noun: "1 pool", "2 pools".
func plural[T ~int | ~int64 | ~uint64](n T, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// policyText shows a policy with its values: "wrr weight=5", "lu load=25%".
func policyText(p asap.Policy) string {
	s := p.Type.String()
	pct := func(v uint32) string { return fmt.Sprintf("%.0f%%", float64(v)*100/0xFFFFFFFF) }
	if p.Weight != 0 {
		s += fmt.Sprintf(" weight=%d", p.Weight)
	}
	if p.Priority != 0 {
		s += fmt.Sprintf(" priority=%d", p.Priority)
	}
	if p.Type.Adaptive() {
		s += " load=" + pct(p.Load)
	}
	if p.LoadDegradation != 0 {
		s += " degradation=" + pct(p.LoadDegradation)
	}
	return s
}
