package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
)

func runResolve(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return resolveCmd(ctx, args, os.Stdout, os.Stderr)
}

// resolvedPE is one PE as `rsp resolve -json` prints it.
type resolvedPE struct {
	ID           uint32       `json:"id"`
	IDHex        string       `json:"id_hex"`
	Home         string       `json:"home"`
	Transport    string       `json:"transport"`
	TransportUse string       `json:"transport_use"`
	Addresses    []netip.Addr `json:"addresses"`
	Port         uint16       `json:"port"`
	Policy       asap.Policy  `json:"policy"`
	LifetimeMs   uint32       `json:"lifetime_ms"`
}

// resolution is what `rsp resolve -json` prints.
type resolution struct {
	Pool string       `json:"pool"`
	PEs  []resolvedPE `json:"pes"`
}

func useString(u asap.TransportUse) string {
	if u == asap.UseDataAndControl {
		return "data+control"
	}
	return "data"
}

func resolveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rsp resolve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf registrarFlags
	rf.bind(fs)
	n := fs.Uint("n", 0, "how many PEs to ask for (0: the registrar's default, 3 for ours and RSPLIB's)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: rsp resolve [flags] HANDLE

Asks a registrar for PEs of the pool, chosen by the pool's member selection
policy, and prints them. Exits 1 when the pool is unknown.`)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return cli.UsageError(fs, "want one pool HANDLE, got %q", fs.Args())
	}
	if *n > 0xFFFFFFFF {
		fmt.Fprintln(stderr, "rsp resolve: -n: at most 4294967295")
		return 2
	}
	log, err := rf.logger("rsp-resolve", stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rsp resolve:", err)
		return 2
	}
	cfg, err := rf.userConfig(log)
	if err != nil {
		fmt.Fprintln(stderr, "rsp resolve:", err)
		return 2
	}
	cfg.CacheTime = 0
	cfg.Items = uint32(*n)
	u, err := pu.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "rsp resolve:", err)
		return 2
	}
	defer u.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	h := asap.PoolHandle(fs.Arg(0))
	pes, err := u.Resolve(ctx, h)
	if err != nil {
		fmt.Fprintln(stderr, "rsp resolve:", explain(err))
		return 1
	}
	out := resolution{Pool: string(h)}
	for _, p := range pes {
		out.PEs = append(out.PEs, resolvedPE{
			ID: p.ID, IDHex: fmt.Sprintf("0x%08x", p.ID), Home: fmt.Sprintf("0x%08x", p.Home),
			Transport: p.User.Kind.String(), TransportUse: useString(p.User.Use),
			Addresses: p.User.Addrs, Port: p.User.Port, Policy: p.Policy, LifetimeMs: p.Lifetime,
		})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(stderr, "rsp resolve:", err)
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOME\tTRANSPORT\tADDRESSES\tPORT\tPOLICY")
	for _, p := range out.PEs {
		addrs := ""
		for i, a := range p.Addresses {
			if i > 0 {
				addrs += ","
			}
			addrs += a.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%d\t%s\n", p.IDHex, p.Home, p.Transport, p.TransportUse, addrs, p.Port, policyString(p.Policy))
	}
	if err := tw.Flush(); err != nil {
		return 1
	}
	return 0
}
