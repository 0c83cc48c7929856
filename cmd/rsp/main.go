// Command rsp is the RSerPool toolbox for pool elements and pool users: it
// serves a demo service in a pool, resolves pool handles, talks to a pool
// with failover, generates load, and decodes and encodes wire messages.
package main

import (
	"os"

	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/cmd/internal/watchcmd"
)

var app = &cli.App{
	Name:    "rsp",
	Summary: "RSerPool tools for pool elements and pool users",
	Commands: []cli.Command{
		{Name: "bench", Summary: "generate registration or resolution load and measure it", Run: runBench, Subcommands: []string{"register", "resolve", "echo", "supervise"}},
		{Name: "connect", Summary: "a terminal to a pool: lines to a PE, replies back, with failover", Run: runConnect},
		{Name: "decode", Summary: "decode an ASAP or ENRP message from hex to JSON", Run: runDecode},
		{Name: "encode", Summary: "encode an ASAP or ENRP message from JSON to hex", Run: runEncode},
		{Name: "resolve", Summary: "print the PEs a registrar chooses for a pool handle", Run: runResolve},
		{Name: "serve", Summary: "run a PE with a demo service (echo, discard, daytime, chargen)", Run: runServe},
		{Name: "watch", Summary: "print a registrar's handlespace changes as they happen", Run: func(args []string) int { return watchcmd.Run("rsp", args) }},
	},
	Protocols: []string{"ASAP (RFC 5352) and ENRP (RFC 5353), parameters of RFC 5354, policies of RFC 5356 and RSPLIB's"},
}

func main() {
	os.Exit(app.Main(os.Args[1:]))
}
