package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/rserpool-go/registrar/registrar"
)

func runMembers(args []string) int {
	var cf clientFlags
	fs := flag.NewFlagSet("registrar members", flag.ContinueOnError)
	cf.bind(fs)
	if err := fs.Parse(args); err != nil {
		return 2
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
		role := "-"
		switch {
		case m.Leader:
			role = "leader"
		case m.Voter:
			role = "voter"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Status, m.Gossip, m.Raft, role, m.ASAP)
	}
	w.Flush()
	return 0
}

func runLeave(args []string) int {
	var cf clientFlags
	fs := flag.NewFlagSet("registrar leave", flag.ContinueOnError)
	cf.bind(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := cf.do(http.MethodPost, "/v1/leave", nil, nil); err != nil {
		return fail("leave", err)
	}
	fmt.Println("the registrar is leaving the cluster gracefully and will stop")
	return 0
}

func runRaft(args []string) int {
	usage := func() {
		fmt.Fprintln(os.Stderr, "usage: registrar raft peers [-http ADDR] [-json]\n       registrar raft remove-peer [-http ADDR] ID")
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	var cf clientFlags
	fs := flag.NewFlagSet("registrar raft "+args[0], flag.ContinueOnError)
	cf.bind(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
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
		fmt.Fprintln(w, "ID\tADDRESS\tSUFFRAGE\tLEADER\tALIVE")
		for _, p := range peers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%v\n", p.ID, p.Address, p.Suffrage, p.Leader, p.Alive)
		}
		w.Flush()
		return 0
	case "remove-peer":
		if fs.NArg() != 1 {
			usage()
			return 2
		}
		if err := cf.do(http.MethodDelete, "/v1/raft/peers/"+fs.Arg(0), nil, nil); err != nil {
			return fail("raft remove-peer", err)
		}
		fmt.Printf("removed raft peer %s\n", fs.Arg(0))
		return 0
	}
	usage()
	return 2
}
