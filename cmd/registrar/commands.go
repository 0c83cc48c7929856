package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/registrar"
)

const agentUsage = `usage: registrar agent [-config FILE] [flags]
       registrar agent -config FILE -validate

Runs a registrar in the foreground until SIGINT or SIGTERM. It logs
"registrar ready" once it serves (and tells systemd READY=1 under
Type=notify). SIGHUP reads the config file and the flags again and applies
what can change live (log_level, resolution_rate/burst,
unreachable_rate/burst, metrics_pool_top, enrp_peers); it logs what changed
and which other changes need a restart.

-validate checks the configuration (file and flags) and exits: 0 when it is
valid, 2 with every problem (file:line:column for those of the file).
See docs/configuration.md for every flag and config key.`

// runAgent runs the registrar until SIGINT or SIGTERM; SIGHUP reloads.
func runAgent(args []string) int {
	// The flags alone first: -h, flag errors, -validate.
	var file string
	var validate bool
	scratch := registrar.DefaultConfig()
	fs := registrar.AgentFlagSet(&scratch, &file, &validate)
	cli.SetUsage(fs, agentUsage)
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q (flags start with -)", fs.Args())
	}
	cfg, err := registrar.ParseAgentArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrar agent: invalid configuration:\n%v\n", err)
		return 2
	}
	if validate {
		src := "the flags"
		if file != "" {
			src = file + " and the flags"
		}
		fmt.Printf("configuration is valid (%s)\n", src)
		return 0
	}
	r, err := registrar.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrar agent: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
		notify(r, "READY=1\nSTATUS=serving")
	case err := <-done:
		return exitRun(err)
	}
	for {
		select {
		case err := <-done:
			return exitRun(err)
		case <-ctx.Done():
			notify(r, "STOPPING=1")
			return exitRun(<-done)
		case <-hup:
			notify(r, "RELOADING=1")
			reload(r, args)
			notify(r, "READY=1\nSTATUS=serving")
		}
	}
}

// reload reads the configuration again and applies it (Reload logs the
// outcome, errors included).
func reload(r *registrar.Registrar, args []string) {
	next, err := registrar.ParseAgentArgs(args)
	if err != nil {
		// One line: every problem, separated by "; ".
		r.Logger().Error("configuration not reloaded: it is invalid", "error", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	_, _ = r.Reload(next)
}

func notify(r *registrar.Registrar, state string) {
	if err := sdNotify(state); err != nil {
		r.Logger().Warn("cannot notify systemd", "error", err)
	}
}

func exitRun(err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrar agent: %v\n", err)
		return 1
	}
	return 0
}
