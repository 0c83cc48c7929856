package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/rserpool-go/registrar/registrar"
)

type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{
	"agent":    {"run a registrar", runAgent},
	"status":   {"show a running registrar's status", runStatus},
	"pools":    {"list pools, or show one pool's PEs", runPools},
	"members":  {"list the registrars of the cluster", runMembers},
	"leave":    {"make a registrar leave the cluster gracefully and stop", runLeave},
	"raft":     {"raft peers | raft remove-peer ID", runRaft},
	"snapshot": {"save, inspect or restore handlespace snapshots", runSnapshot},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: registrar <command> [flags] [args]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nrun 'registrar <command> -h' for the flags of a command")
}

// runAgent runs the registrar until SIGINT or SIGTERM.
func runAgent(args []string) int {
	cfg, err := registrar.ParseAgentArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrar agent: invalid configuration:\n%v\n", err)
		return 2
	}
	r, err := registrar.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrar agent: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := r.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "registrar agent: %v\n", err)
		return 1
	}
	return 0
}
