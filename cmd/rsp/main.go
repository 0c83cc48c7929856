// Command rsp is the RSerPool toolbox for pool elements and pool users: it
// serves a demo service in a pool, resolves pool handles, talks to a pool
// with failover, generates load, and decodes and encodes wire messages.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "rsp: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(cmd.run(os.Args[2:]))
}
