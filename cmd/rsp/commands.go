package main

import (
	"fmt"
	"os"
	"sort"
)

type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{
	"bench":   {"generate registration or resolution load and measure it", runBench},
	"connect": {"a terminal to a pool: lines to a PE, replies back, with failover", runConnect},
	"decode":  {"decode an ASAP or ENRP message from hex to JSON", runDecode},
	"encode":  {"encode an ASAP or ENRP message from JSON to hex", runEncode},
	"resolve": {"print the PEs a registrar chooses for a pool handle", runResolve},
	"serve":   {"run a PE with a demo service (echo, discard, daytime, chargen)", runServe},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: rsp <command> [flags] [args]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nrun 'rsp <command> -h' for the flags of a command")
}
