package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/transport"
)

// benchResult is what `rsp bench -json` prints.
type benchResult struct {
	Mode      string  `json:"mode"`
	Conns     int     `json:"conns"`
	Pipeline  int     `json:"pipeline"` // requests outstanding per connection
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50us     float64 `json:"p50_us"`
	P90us     float64 `json:"p90_us"`
	P99us     float64 `json:"p99_us"`
	MaxUs     float64 `json:"max_us"`
	// FirstError is the first failed operation, if any.
	FirstError string `json:"first_error,omitempty"`
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("rsp bench", flag.ContinueOnError)
	registrar := fs.String("registrar", "tcp:127.0.0.1:3863", "registrar ASAP address, [tcp:|tls:|sctp:]host:port (first of a comma list is used)")
	pool := fs.String("pool", "bench", "pool handle")
	pes := fs.Int("pes", 100, "PEs per connection (register), or PEs in the pool (resolve)")
	conns := fs.Int("conns", 8, "concurrent connections, -pipeline requests outstanding on each")
	pipeline := fs.Int("pipeline", 1, "resolve, echo: requests outstanding on each connection (sent back to back, answered in order)")
	serve := fs.String("serve", "", "echo: run the bare TCP echo server on this address (host:port) until interrupted, instead of the client")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	items := fs.Uint("n", 3, "resolve: PEs asked per resolution")
	keep := fs.Bool("keep", false, "register: leave the PEs registered (default: deregister at the end)")
	perPE := fs.Bool("pe-per-assoc", false, "give every PE an association of its own, as RSPLIB's PEs have (register: -conns x -pes associations, each loop re-registering its PEs in turn; resolve: the pool's PEs)")
	timeout := fs.Duration("timeout", 5*time.Second, "fail a request the registrar does not answer within this long (the association is closed)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var tf tlsFlags
	tf.bind(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: rsp bench register|resolve|echo [flags]
       rsp bench supervise [flags] (see rsp bench supervise -h)

register: each connection registers -pes PEs (pool policy least used) and
then re-registers them with a new load every time, so every registration is
a durable, replicated handlespace change.
resolve: fills the pool with -pes PEs, then resolves it on every connection.
echo: the baseline for resolve: the same client loop (the same handle
resolution request, framing and decoding) against a bare Go TCP echo
server, which answers each read with a write of the same bytes. Start
the server with "rsp bench echo -serve HOST:PORT" (another process, as the
registrar is), then "rsp bench echo -registrar tcp:HOST:PORT".
With -pipeline K, resolve and echo keep K requests outstanding per
connection.

The PEs register the connection's own local addresses over its own
transport (SCTP or TCP), so any registrar's address check accepts them.
A refusal (registration rejected, ASAP_ERROR) is counted and reported; a
request without an answer within -timeout ends its connection's loop.
Prints throughput and latency percentiles; the last line is "ops/s: N".`)
		fs.PrintDefaults()
	}
	if len(args) > 0 && cli.IsHelp(args[0]) {
		return cli.Help(fs)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return cli.UsageError(fs, "want the mode first: register, resolve or echo")
	}
	mode := args[0]
	if mode == "supervise" {
		return runSupervise(args[1:])
	}
	if mode != "register" && mode != "resolve" && mode != "echo" {
		return cli.Unknown("rsp bench", "mode", mode, []string{"register", "resolve", "echo", "supervise"}, "rsp bench -h")
	}
	if code, ok := cli.Parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
	}
	if *conns < 1 || *pes < 1 || *duration <= 0 || *timeout <= 0 || *pipeline < 1 {
		fmt.Fprintln(os.Stderr, "rsp bench: -conns, -pes, -duration, -timeout and -pipeline must be positive")
		return 2
	}
	if *pipeline > 1 && mode == "register" {
		return cli.UsageError(fs, "-pipeline is for resolve and echo: a registration waits for its commit")
	}
	if *serve != "" && mode != "echo" {
		return cli.UsageError(fs, "-serve is for echo")
	}
	addr := strings.Split(*registrar, ",")[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serve != "" {
		if err := serveEcho(ctx, *serve, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "rsp bench echo:", err)
			return 1
		}
		return 0
	}
	b := &bench{addr: addr, pool: asap.PoolHandle(*pool), pes: *pes, items: uint32(*items), perPE: *perPE, timeout: *timeout, pipeline: *pipeline}
	if strings.HasPrefix(addr, "tls:") {
		var err error
		if b.tls, err = tf.config(); err != nil {
			fmt.Fprintln(os.Stderr, "rsp bench:", err)
			return 2
		}
	}
	res, err := b.run(ctx, mode, *conns, *duration, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsp bench:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return 0
	}
	connText := fmt.Sprintf("%d connections", res.Conns)
	if res.Conns == 1 {
		connText = "1 connection"
	}
	if res.Pipeline > 1 {
		connText += fmt.Sprintf(", %d outstanding on each", res.Pipeline)
	}
	fmt.Printf("mode: %s, %s, %.1f s\n", res.Mode, connText, res.Seconds)
	fmt.Printf("operations: %d (%d errors)\n", res.Ops, res.Errors)
	if res.FirstError != "" {
		fmt.Printf("first error: %s\n", res.FirstError)
	}
	fmt.Printf("latency: p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us\n", res.P50us, res.P90us, res.P99us, res.MaxUs)
	fmt.Printf("ops/s: %.0f\n", res.OpsPerSec)
	return 0
}

type bench struct {
	addr     string
	pool     asap.PoolHandle
	pes      int
	items    uint32
	perPE    bool          // one association per PE
	timeout  time.Duration // per request
	pipeline int           // resolve, echo: requests outstanding per connection (0, 1: one)
	// tls is the client configuration of a tls: address (one for every
	// connection: new connections resume TLS sessions).
	tls *tls.Config
}

// benchConn is one ASAP association with one request outstanding; it
// answers keep-alives while it waits. Its PEs register with the
// association's own local addresses and transport, as a PE must for the
// registrar's address check (RFC 5352 section 3.10; RSPLIB verifies them
// against the SCTP association).
type benchConn struct {
	c       transport.Conn
	buf     []byte
	user    asap.Transport // the user transport its PEs register
	timeout time.Duration
}

// dial opens an association; a requesting one (not a fill PE's, which
// only answers keep-alives) bounds every wait for an answer by the request
// timeout, and call also checks the whole request's age, as keep-alives
// restart that per-message bound.
func (b *bench) dial(ctx context.Context, requesting bool) (*benchConn, error) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	cfg.TLS = b.tls
	if requesting {
		cfg.ReadTimeout = b.timeout
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, b.addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the registrar at %s: %w", b.addr, err)
	}
	user := asap.Transport{Kind: asap.ParamTCPTransport, Use: asap.UseDataAndControl, Addrs: c.LocalAddr().Addrs}
	if c.Kind() == transport.KindSCTP {
		user.Kind = asap.ParamSCTPTransport
	} else if len(user.Addrs) > 1 {
		user.Addrs = user.Addrs[:1]
	}
	if len(user.Addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("connection to %s has no local address to register", b.addr)
	}
	return &benchConn{c: c, buf: make([]byte, 0, 256), user: user, timeout: b.timeout}, nil
}

// errTimeout is a request the registrar did not answer in time.
var errTimeout = errors.New("no answer")

// call sends m and waits for the answer of type want; an ASAP_ERROR is
// the answer's failure (the registrar refused the request). It uses no
// cancellable context per message (that costs a hook per call and skews
// the measurement): an interrupt closes the connections instead, and the
// connection's read timeout bounds each wait.
func (bc *benchConn) call(m asap.Message, want asap.Type) (asap.Message, error) {
	ctx := context.Background()
	var err error
	if bc.buf, err = asap.Append(bc.buf[:0], m); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := bc.c.Send(ctx, transport.PPIDASAP, bc.buf); err != nil {
		return nil, err
	}
	for {
		_, msg, err := bc.c.Recv(ctx)
		if errors.Is(err, transport.ErrReadTimeout) {
			return nil, fmt.Errorf("%v: %w within %v", m.Type(), errTimeout, bc.timeout)
		}
		if err != nil {
			return nil, err
		}
		ans, _, err := asap.Unpack(msg, nil)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%v: undecodable answer: %w", m.Type(), err)
		case ans.Type() == want:
			return ans, nil
		case ans.Type() == asap.TypeError:
			return nil, fmt.Errorf("%v: the registrar answered ASAP_ERROR: %w", m.Type(), &ans.(*asap.Error).Error)
		case ans.Type() == asap.TypeEndpointKeepAlive:
			k := ans.(*asap.EndpointKeepAlive)
			if ack, err := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: k.PoolHandle, ID: k.ID}); err == nil {
				_ = bc.c.Send(ctx, transport.PPIDASAP, ack)
			}
		}
		if time.Since(t0) > bc.timeout {
			return nil, fmt.Errorf("%v: %w within %v", m.Type(), errTimeout, bc.timeout)
		}
	}
}

// serveKeepAlives answers the keep-alives of an association that sends
// no requests (a fill PE's in resolve mode with -pe-per-assoc) until it
// closes.
func (bc *benchConn) serveKeepAlives() {
	for {
		_, msg, err := bc.c.Recv(context.Background())
		if err != nil {
			return
		}
		if m, _, err := asap.Unpack(msg, nil); err == nil && m.Type() == asap.TypeEndpointKeepAlive {
			k := m.(*asap.EndpointKeepAlive)
			if ack, err := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: k.PoolHandle, ID: k.ID}); err == nil {
				_ = bc.c.Send(context.Background(), transport.PPIDASAP, ack)
			}
		}
	}
}

func (bc *benchConn) pe(id uint32, load uint32) asap.PoolElement {
	u := bc.user
	u.Port = uint16(10000 + id%50000)
	return asap.PoolElement{ID: id, Lifetime: 300000, User: u, Policy: asap.Policy{Type: asap.PolicyLeastUsed, Load: load}}
}

func (b *bench) register(bc *benchConn, id, load uint32) error {
	ans, err := bc.call(&asap.Registration{PoolHandle: b.pool, PoolElement: bc.pe(id, load)}, asap.TypeRegistrationResponse)
	if err != nil {
		return err
	}
	if r := ans.(*asap.RegistrationResponse); r.Reject {
		return fmt.Errorf("registration refused: %w", r.Error)
	}
	return nil
}

// worker is one closed loop: one request outstanding, over its own
// association or, with -pe-per-assoc, over the association of the PE
// the request is about.
type worker struct {
	conns []*benchConn // one, or one per PE
	lat   []time.Duration
	// registered: the PEs (by index) a registration of which succeeded,
	// to deregister at the end.
	registered map[int]bool
}

func (w *worker) conn(n int) *benchConn { return w.conns[n%len(w.conns)] }

func (b *bench) run(ctx context.Context, mode string, conns int, d time.Duration, keep bool) (*benchResult, error) {
	var all []*benchConn
	closeAll := func() {
		for _, bc := range all {
			bc.c.Close()
		}
	}
	defer closeAll()
	dial := func(requesting bool) (*benchConn, error) {
		bc, err := b.dial(ctx, requesting)
		if err == nil {
			all = append(all, bc)
		}
		return bc, err
	}
	ws := make([]*worker, conns)
	for i := range ws {
		ws[i] = &worker{registered: map[int]bool{}}
		n := 1
		if b.perPE && mode == "register" {
			n = b.pes
		}
		for j := 0; j < n; j++ {
			bc, err := dial(true)
			if err != nil {
				return nil, err
			}
			ws[i].conns = append(ws[i].conns, bc)
		}
	}
	// resolve: fill the pool first, over the first worker's association
	// or, with -pe-per-assoc, each PE over an association of its own.
	var fill []*benchConn
	if mode == "resolve" {
		for i := 0; i < b.pes; i++ {
			bc := ws[0].conns[0]
			if b.perPE {
				var err error
				if bc, err = dial(false); err != nil {
					return nil, err
				}
			}
			fill = append(fill, bc)
			if err := b.register(bc, uint32(0x7f000000+i), 0); err != nil {
				return nil, fmt.Errorf("filling the pool: %w", err)
			}
			if b.perPE {
				go bc.serveKeepAlives()
			}
		}
	}
	stopWatch := context.AfterFunc(ctx, closeAll) // interrupt: unblock every call
	defer stopWatch()
	var ops, errs atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i, w := range ws {
		wg.Add(1)
		if mode != "register" { // resolve and echo: the same loop, so echo is their baseline
			go func() {
				defer wg.Done()
				b.pipelined(ctx, mode, w, deadline, &ops, &errs, &firstErr)
			}()
			continue
		}
		go func() {
			defer wg.Done()
			n := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				var err error
				bc := w.conn(n)
				id := uint32(i*b.pes+n%b.pes) + 1
				err = b.register(bc, id, uint32(n/b.pes+1))
				n++
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					var oe *asap.OperationError
					if !errors.As(err, &oe) || ctx.Err() != nil {
						return // the association failed or timed out: this loop ends
					}
					continue // refused: counted, and the next request goes
				}
				w.lat = append(w.lat, time.Since(t0))
				ops.Add(1)
				w.registered[(n-1)%b.pes] = true
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if !keep && mode == "register" {
		for i, w := range ws {
			for j := range w.registered {
				_, _ = w.conn(j).call(&asap.Deregistration{PoolHandle: b.pool, ID: uint32(i*b.pes+j) + 1}, asap.TypeDeregistrationResponse)
			}
		}
	}
	for i, bc := range fill {
		dereg := &asap.Deregistration{PoolHandle: b.pool, ID: uint32(0x7f000000 + i)}
		if !b.perPE {
			_, _ = bc.call(dereg, asap.TypeDeregistrationResponse)
			continue
		}
		// serveKeepAlives reads this association: send without waiting
		// for the answer; closing it delivers what was sent first.
		if m, err := asap.Pack(dereg); err == nil {
			sctx, cancel := context.WithTimeout(context.Background(), b.timeout)
			_ = bc.c.Send(sctx, transport.PPIDASAP, m)
			cancel()
		}
	}
	var lat []time.Duration
	for _, w := range ws {
		lat = append(lat, w.lat...)
	}
	first, _ := firstErr.Load().(error)
	if len(lat) == 0 {
		if first != nil {
			return nil, fmt.Errorf("no operation succeeded: %w", first)
		}
		return nil, errors.New("no operation completed")
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	res := &benchResult{Mode: mode, Conns: len(all), Pipeline: max(b.pipeline, 1), Ops: ops.Load(), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		OpsPerSec: float64(ops.Load()) / elapsed.Seconds(), P50us: pct(0.5), P90us: pct(0.9), P99us: pct(0.99), MaxUs: float64(lat[len(lat)-1].Microseconds())}
	if first != nil {
		res.FirstError = first.Error()
	}
	return res, nil
}

// request is the request of a resolve or echo loop, and the answer's type.
func (b *bench) request(mode string) ([]byte, asap.Type, error) {
	req, err := asap.Pack(&asap.HandleResolution{PoolHandle: b.pool, HasItems: true, Items: b.items})
	want := asap.TypeHandleResolutionResponse
	if mode == "echo" {
		want = asap.TypeHandleResolution // the echo server sends the request back
	}
	return req, want, err
}

// What an answer of a resolve or echo loop was.
const (
	answerCounted = iota // the answer to the oldest request
	answerRefused        // a refusal of it (counted as an error)
	answerOther          // no answer (a keep-alive, answered)
	answerStop           // undecodable: the loop ends
)

// classify reads one message of a resolve or echo loop. The answer of
// the mode is read in place, without decoding
// (asap.ReadHandleResolutionResponse, or the echoed request): the
// client's share of the two CPUs stays small and alike in both modes.
// Anything else, refusals included, is decoded.
func (b *bench) classify(mode string, want asap.Type, msg []byte, bc *benchConn, fail func(error)) int {
	if mode == "echo" {
		if _, _, _, ok := asap.ReadHandleResolution(msg, nil); ok {
			return answerCounted
		}
	} else if _, _, ok := asap.ReadHandleResolutionResponse(msg, nil); ok {
		return answerCounted
	}
	ans, _, err := asap.Unpack(msg, nil)
	if err != nil {
		fail(fmt.Errorf("undecodable answer: %w", err))
		return answerStop
	}
	switch a := ans.(type) {
	case *asap.EndpointKeepAlive:
		if ack, err := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: a.PoolHandle, ID: a.ID}); err == nil {
			_ = bc.c.Send(context.Background(), transport.PPIDASAP, ack)
		}
		return answerOther
	case *asap.Error:
		fail(fmt.Errorf("the registrar answered ASAP_ERROR: %w", &a.Error))
		return answerRefused
	case *asap.HandleResolutionResponse:
		if a.Error != nil {
			fail(fmt.Errorf("resolution refused: %w", a.Error))
			return answerRefused
		}
	}
	if ans.Type() != want {
		return answerOther
	}
	return answerCounted
}

// pipelined is one connection's loop with b.pipeline requests outstanding
// (resolve, echo): the answers come in order, so each one's latency is
// from the oldest outstanding request's send. A keep-alive is answered; a
// refusal is counted and its request replaced, as in the closed loop.
func (b *bench) pipelined(ctx context.Context, mode string, w *worker, deadline time.Time, ops, errs *atomic.Int64, firstErr *atomic.Value) {
	bc := w.conns[0]
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	req, want, err := b.request(mode)
	if err != nil {
		fail(err)
		return
	}
	k := max(b.pipeline, 1)
	sent := make([]time.Time, 0, k) // outstanding requests' send times, oldest first
	send := func() bool {
		sent = append(sent, time.Now())
		if err := bc.c.Send(context.Background(), transport.PPIDASAP, req); err != nil {
			fail(err)
			return false
		}
		return true
	}
	for range k {
		if !send() {
			return
		}
	}
	for len(sent) > 0 {
		_, msg, err := bc.c.Recv(context.Background())
		if errors.Is(err, transport.ErrReadTimeout) {
			fail(fmt.Errorf("%v: %w within %v", want, errTimeout, b.timeout))
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		switch b.classify(mode, want, msg, bc, fail) {
		case answerStop:
			return
		case answerOther:
			continue // not an answer to a request
		case answerRefused:
			// counted by fail; the request is replaced below
		case answerCounted:
			ops.Add(1)
			w.lat = append(w.lat, time.Since(sent[0]))
		}
		sent = sent[1:]
		if time.Now().Before(deadline) && ctx.Err() == nil {
			if len(sent) == cap(sent) { // keep the outstanding times at the front
				sent = append(make([]time.Time, 0, k), sent...)
			}
			if !send() {
				return
			}
		}
	}
}

// serveEcho runs a bare Go TCP echo server on addr until ctx ends: one
// goroutine per connection writes back whatever each read returned. It
// is the baseline of resolve (rsp bench echo): what the same client loop
// gets from a server that does nothing but read and write.
func serveEcho(ctx context.Context, addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "echo server listening on tcp:%s\n", ln.Addr())
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
