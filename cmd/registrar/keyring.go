package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/registrar"
)

const keyringUsage = `usage: registrar keyring list [-http ADDR] [-json]
       registrar keyring install|use|remove [-http ADDR] KEY

Manages the gossip encryption keyring (operator role). list shows this
registrar's keys by fingerprint; install adds KEY (base64 of 16, 24 or 32
bytes) to every alive registrar, use makes it the key they encrypt with,
remove drops it. A rotation without downtime: install NEW, use NEW, remove
OLD. Each registrar keeps its keyring in its data dir.`

func runKeyring(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(cli.Stderr, "registrar keyring: want a subcommand: list, install, use or remove")
		fmt.Fprintln(cli.Stderr, "run 'registrar keyring -h' for usage")
		return 2
	}
	if cli.IsHelp(args[0]) {
		fmt.Fprintln(cli.Stdout, keyringUsage)
		return 0
	}
	sub := args[0]
	switch sub {
	case "list", "install", "use", "remove":
	default:
		return cli.Unknown("registrar keyring", "subcommand", sub, []string{"list", "install", "use", "remove"}, "registrar keyring -h")
	}
	var cf clientFlags
	fs := flag.NewFlagSet("registrar keyring "+sub, flag.ContinueOnError)
	cli.SetUsage(fs, keyringUsage)
	cf.bind(fs)
	pos, code, ok := cli.ParseInterleaved(fs, args[1:])
	if !ok {
		return code
	}
	if sub == "list" {
		if len(pos) > 0 {
			return cli.UsageError(fs, "unexpected arguments %q", pos)
		}
		var keys []cluster.KeyInfo
		if err := cf.get("/v1/keyring", &keys); err != nil {
			return fail("keyring list", err)
		}
		if cf.json {
			printJSON(keys)
			return 0
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "FINGERPRINT\tPRIMARY")
		for _, k := range keys {
			fmt.Fprintf(w, "%s\t%v\n", k.Fingerprint, k.Primary)
		}
		w.Flush()
		return 0
	}
	if len(pos) != 1 {
		return cli.UsageError(fs, "want the KEY (base64)")
	}
	body, _ := json.Marshal(registrar.KeyringRequest{Key: pos[0]})
	var res registrar.KeyringChange
	err := cf.do(http.MethodPost, "/v1/keyring/"+sub, bytes.NewReader(body), &res)
	if err != nil {
		return fail("keyring "+sub, err)
	}
	if cf.json {
		printJSON(res)
	}
	failed := 0
	for _, r := range res.Results {
		if !r.OK {
			failed++
			fmt.Fprintf(os.Stderr, "registrar %s: %s\n", r.Registrar, r.Error)
		}
	}
	if !cf.json {
		fmt.Printf("%s %s: done at %d of %d registrars\n", sub, cluster.Fingerprint(mustKey(pos[0])), len(res.Results)-failed, len(res.Results))
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func mustKey(s string) []byte {
	k, _ := cluster.ParseEncryptKey(s)
	return k
}
