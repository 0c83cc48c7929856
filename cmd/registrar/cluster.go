package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/registrar"
)

func runMembers(args []string) int {
	var cf clientFlags
	fs := flag.NewFlagSet("registrar members", flag.ContinueOnError)
	cli.SetUsage(fs, `usage: registrar members [-http ADDR] [-json]

Lists the registrars of the cluster as gossip sees them (alive, suspect,
failed, left) with their raft role and addresses.`)
	cf.bind(fs)
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
	}
	var ms []registrar.MemberInfo
	if err := cf.get("/v1/members", &ms); err != nil {
		return fail("members", err)
	}
	if cf.json {
		printJSON(ms)
		return 0
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tID\tSTATUS\tGOSSIP\tRAFT\tROLE\tASAP")
	for _, m := range ms {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Status, m.Gossip, m.Raft, role(m), m.ASAP)
	}
	w.Flush()
	return 0
}

// role is a member's raft role: leader, voter, non-voter or "-".
func role(m registrar.MemberInfo) string {
	switch {
	case m.Leader:
		return "leader"
	case m.Role != "":
		return m.Role
	}
	return "-"
}

func runLeave(args []string) int {
	var cf clientFlags
	fs := flag.NewFlagSet("registrar leave", flag.ContinueOnError)
	cli.SetUsage(fs, `usage: registrar leave [-http ADDR]

Makes the registrar whose admin API you address leave the cluster
gracefully (the cluster takes over its PEs at once) and stop.`)
	cf.bind(fs)
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
	}
	if err := cf.do(http.MethodPost, "/v1/leave", nil, nil); err != nil {
		return fail("leave", err)
	}
	fmt.Println("the registrar is leaving the cluster gracefully and will stop")
	return 0
}

const raftUsage = `usage: registrar raft peers [-http ADDR] [-json]
       registrar raft remove-peer [-http ADDR] ID

peers lists the raft configuration (each server's role: voter or
non-voter, the leader, which are alive);
remove-peer removes a raft server by its registrar ID (forwarded to the
leader).`

func runRaft(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(cli.Stderr, "registrar raft: want a subcommand: peers or remove-peer")
		fmt.Fprintln(cli.Stderr, "run 'registrar raft -h' for usage")
		return 2
	}
	if cli.IsHelp(args[0]) {
		fmt.Fprintln(cli.Stdout, raftUsage)
		return 0
	}
	if args[0] != "peers" && args[0] != "remove-peer" {
		return cli.Unknown("registrar raft", "subcommand", args[0], []string{"peers", "remove-peer"}, "registrar raft -h")
	}
	var cf clientFlags
	fs := flag.NewFlagSet("registrar raft "+args[0], flag.ContinueOnError)
	cli.SetUsage(fs, raftUsage)
	cf.bind(fs)
	if code, ok := cli.Parse(fs, args[1:]); !ok {
		return code
	}
	switch args[0] {
	case "peers":
		var peers []registrar.RaftPeer
		if err := cf.get("/v1/raft/peers", &peers); err != nil {
			return fail("raft peers", err)
		}
		if cf.json {
			printJSON(peers)
			return 0
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tADDRESS\tROLE\tLEADER\tALIVE")
		for _, p := range peers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%v\n", p.ID, p.Address, p.Role, p.Leader, p.Alive)
		}
		w.Flush()
		return 0
	case "remove-peer":
		if fs.NArg() != 1 {
			return cli.UsageError(fs, "want the ID of the raft server to remove")
		}
		if err := cf.do(http.MethodDelete, "/v1/raft/peers/"+fs.Arg(0), nil, nil); err != nil {
			return fail("raft remove-peer", err)
		}
		fmt.Printf("removed raft peer %s\n", fs.Arg(0))
		return 0
	}
	return 2 // not reached: the subcommand was checked above
}
