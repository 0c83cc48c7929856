// Command registrar runs an RSerPool registrar (`registrar agent`) and
// talks to a running one through its admin API (status, pools, members,
// raft, snapshot, leave).
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/cmd/internal/watchcmd"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/snapshot"
)

var app = &cli.App{
	Name:    "registrar",
	Summary: "a clustered, persistent RSerPool registrar (ENRP server) and its admin client",
	Commands: []cli.Command{
		{Name: "agent", Summary: "run a registrar", Run: runAgent},
		{Name: "status", Summary: "show a running registrar's status", Run: runStatus},
		{Name: "pools", Summary: "list pools, or show one pool's PEs", Run: runPools},
		{Name: "watch", Summary: "print the handlespace's changes as they happen", Run: func(args []string) int { return watchcmd.Run("registrar", args) }},
		{Name: "members", Summary: "list the registrars of the cluster", Run: runMembers},
		{Name: "leave", Summary: "make a registrar leave the cluster gracefully and stop", Run: runLeave},
		{Name: "raft", Summary: "raft peers | raft remove-peer ID", Run: runRaft, Subcommands: []string{"peers", "remove-peer"}},
		{Name: "snapshot", Summary: "save, inspect or restore handlespace snapshots", Run: runSnapshot, Subcommands: []string{"save", "inspect", "restore"}},
		{Name: "keyring", Summary: "gossip encryption keys: keyring list | install | use | remove KEY", Run: runKeyring, Subcommands: []string{"list", "install", "use", "remove"}},
		{Name: "tls", Summary: "make a CA and certificates for a cluster: tls ca | tls cert", Run: runTLS, Subcommands: []string{"ca", "cert"}},
	},
}

func main() {
	app.Version = registrar.Version
	app.Protocols = []string{
		"ASAP (RFC 5352) and ENRP (RFC 5353), parameters of RFC 5354, policies of RFC 5356",
		fmt.Sprintf("raft log command envelope v%d, gossip metadata v%d, snapshot format v%d", cluster.CommandVersion, cluster.MetaVersion, snapshot.FormatVersion),
		fmt.Sprintf("raft protocol v%d (hashicorp/raft %s), memberlist %s", raft.ProtocolVersionMax,
			orUnknown(cli.ModuleVersion("github.com/hashicorp/raft")), orUnknown(cli.ModuleVersion("github.com/hashicorp/memberlist"))),
	}
	os.Exit(app.Main(os.Args[1:]))
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown version)"
	}
	return s
}
