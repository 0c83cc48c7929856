package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/transport"
)

func runConnect(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return connectCmd(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// sentLine is a line sent and not answered yet.
type sentLine struct {
	data  []byte
	epoch int64 // failovers before it reached the PE it waits on
	at    time.Time
}

func connectCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rsp connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf registrarFlags
	rf.bind(fs)
	var cf cspFlags
	cf.bind(fs)
	ppid := fs.Uint("ppid", 0, "payload protocol identifier of the lines sent (not 11, ASAP's)")
	timeout := fs.Duration("timeout", 5*time.Second, "wait this long for a reply before failing over to another PE; at the end of input, for the last replies")
	replies := fs.Bool("replies", true, "expect one reply per line (set false for a discard service)")
	count := fs.Int("n", 0, "exit after this many messages from the pool, also those it sends unasked (daytime, chargen); the end of input then does not end the session (0: no limit)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: rsp connect [flags] HANDLE

A terminal to a pool: each line of standard input goes to a PE of the pool,
replies go to standard output. When the PE fails (its connection breaks, or
a reply does not come within -timeout) the session fails over to another PE,
hands it the last cookie and sends the unanswered lines again; standard
error says so. Exits when the input ends and the last reply arrived.`)
		fs.PrintDefaults()
	}
	fs.Lookup("log-level").DefValue = "warn"
	rf.logLevel = "warn"
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return cli.UsageError(fs, "want one pool HANDLE, got %q", fs.Args())
	}
	if *ppid == uint(transport.PPIDASAP) || *ppid > 0xFFFFFFFF {
		fmt.Fprintln(stderr, "rsp connect: -ppid: any 32-bit value but 11 (ASAP's)")
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "rsp connect: -timeout must be positive")
		return 2
	}
	if *count < 0 {
		fmt.Fprintln(stderr, "rsp connect: -n must not be negative")
		return 2
	}
	if err := cf.check(); err != nil {
		fmt.Fprintln(stderr, "rsp connect:", err)
		return 2
	}
	log, err := rf.logger("rsp-connect", stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rsp connect:", err)
		return 2
	}
	ucfg, err := rf.userConfig(log)
	if err != nil {
		fmt.Fprintln(stderr, "rsp connect:", err)
		return 2
	}
	u, err := pu.New(ucfg)
	if err != nil {
		fmt.Fprintln(stderr, "rsp connect:", err)
		return 2
	}
	defer u.Close()

	h := asap.PoolHandle(fs.Arg(0))
	events := make(chan pu.Failover, 64)
	var failovers atomic.Int64
	scfg := pu.DefaultSessionConfig()
	scfg.PPID = uint32(*ppid)
	scfg.OnFailover = func(f pu.Failover) {
		failovers.Add(1)
		select {
		case events <- f:
		default:
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 3**timeout+15*time.Second)
	s, err := u.Connect(cctx, h, scfg)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "rsp connect:", explain(err))
		return 1
	}
	defer s.Close()
	fmt.Fprintf(stderr, "connected to PE 0x%08x (%s) of pool %s\n", s.PE().ID, transportLabel(s.PE().User), h)
	stopCSP, err := cf.start(csp.ID(csp.GroupPoolUser, rand.Uint64()), func() *csp.Report { return puReport(u, s, scfg.PPID) }, log)
	if err != nil {
		fmt.Fprintln(stderr, "rsp connect:", err)
		return 2
	}
	defer stopCSP()

	lines := make(chan []byte)
	go func() { // ends at the end of input (the process exits anyway)
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 64<<10), 60<<10)
		for sc.Scan() {
			select {
			case lines <- append(sc.Bytes(), '\n'):
			case <-ctx.Done():
				return
			}
		}
	}()
	type reply struct {
		data []byte
		err  error
	}
	rctx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	recvd := make(chan reply)
	go func() {
		for {
			_, b, err := s.Recv(rctx)
			select {
			case recvd <- reply{b, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var pending []sentLine
	inputDone := false
	received, lastMsg := 0, time.Now() // messages from the pool; when the last came
	unanswered := 0                    // forced failovers without a reply since
	tick := time.NewTicker(*timeout / 10)
	defer tick.Stop()
	send := func(b []byte) bool {
		if err := s.Send(ctx, b); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(stderr, "rsp connect:", err)
			}
			return false
		}
		if *replies {
			pending = append(pending, sentLine{data: b, epoch: failovers.Load(), at: time.Now()})
		}
		return true
	}
	for {
		if *count > 0 && received >= *count {
			return 0
		}
		if inputDone && len(pending) == 0 && *count == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case b, ok := <-lines:
			if !ok {
				inputDone, lines = true, nil
				continue
			}
			if !send(b) {
				return 1
			}
		case r := <-recvd:
			if r.err != nil {
				if ctx.Err() != nil {
					return 0
				}
				fmt.Fprintln(stderr, "rsp connect:", r.err)
				return 1
			}
			stdout.Write(r.data)
			if len(r.data) > 0 && r.data[len(r.data)-1] != '\n' {
				io.WriteString(stdout, "\n")
			}
			if len(pending) > 0 {
				pending = pending[1:]
			}
			unanswered = 0
			received, lastMsg = received+1, time.Now()
		case f := <-events:
			how, from := "no cookie", "from a handle resolution"
			if f.CookieEchoed {
				how = "cookie echoed"
			}
			if f.FromBusinessCard {
				from = "from the PE's business card"
			}
			fmt.Fprintf(stderr, "failover: PE 0x%08x unreachable, now PE 0x%08x (%s, %s)\n", f.From, f.To, how, from)
			log.Debug("failover reason", "error", f.Reason)
			// Lines sent to the failed PE are lost with it: send them again.
			now := failovers.Load()
			var again []sentLine
			keep := pending[:0]
			for _, p := range pending {
				if p.epoch < now {
					again = append(again, p)
				} else {
					keep = append(keep, p)
				}
			}
			pending = keep
			if len(again) > 0 {
				fmt.Fprintf(stderr, "failover: sending %d unanswered line(s) again\n", len(again))
			}
			for _, p := range again {
				if !send(p.data) {
					return 1
				}
			}
		case <-tick.C:
			if *count > 0 && len(pending) == 0 && time.Since(lastMsg) >= 2**timeout {
				fmt.Fprintf(stderr, "rsp connect: %d of %d message(s) from pool %s, then none for %v: giving up\n", received, *count, h, 2**timeout)
				return 1
			}
			if len(pending) == 0 || time.Since(pending[0].at) < *timeout {
				continue
			}
			if unanswered >= 2 {
				fmt.Fprintf(stderr, "rsp connect: no reply from pool %s for %d line(s): giving up\n", h, len(pending))
				return 1
			}
			unanswered++
			for i := range pending {
				pending[i].at = time.Now()
			}
			if err := s.Failover(ctx, fmt.Errorf("no reply within %v", *timeout)); err != nil {
				fmt.Fprintln(stderr, "rsp connect:", err)
				return 1
			}
		}
	}
}

// puReport is rsp connect's CSP status, as RSPLIB's PUs report it: one
// session, the host's location, and the associations with the registrar
// (while one is open) and with the session's PE.
func puReport(u *pu.User, s *pu.Session, ppid uint32) *csp.Report {
	r := &csp.Report{Status: sessions(1), Location: cspLocation(nil, 0), Workload: csp.WorkloadUnknown}
	if reg, ok := u.Registrar(); ok {
		r.Associations = append(r.Associations, csp.Association{Receiver: csp.ID(csp.GroupRegistrar, uint64(reg.ID)),
			Duration: durationSince(reg.Since), Protocol: ipProto(reg.Transport), PPID: transport.PPIDASAP})
	}
	if kind, since, ok := s.Connection(); ok {
		r.Associations = append(r.Associations, csp.Association{Receiver: csp.ID(csp.GroupPoolElement, uint64(s.PE().ID)),
			Duration: durationSince(since), Protocol: ipProto(kind), PPID: ppid})
	}
	return r
}
