package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
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
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50us     float64 `json:"p50_us"`
	P90us     float64 `json:"p90_us"`
	P99us     float64 `json:"p99_us"`
	MaxUs     float64 `json:"max_us"`
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("rsp bench", flag.ContinueOnError)
	registrar := fs.String("registrar", "tcp:127.0.0.1:3863", "registrar ASAP address (first of a comma list is used)")
	pool := fs.String("pool", "bench", "pool handle")
	pes := fs.Int("pes", 100, "PEs per connection (register), or PEs in the pool (resolve)")
	conns := fs.Int("conns", 8, "concurrent connections, one request outstanding on each")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	items := fs.Uint("n", 3, "resolve: PEs asked per resolution")
	keep := fs.Bool("keep", false, "register: leave the PEs registered (default: deregister at the end)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: rsp bench register|resolve [flags]

register: each connection registers -pes PEs (pool policy least used) and
then re-registers them with a new load every time, so every registration is
a durable, replicated handlespace change.
resolve: fills the pool with -pes PEs, then resolves it on every connection.

Prints throughput and latency percentiles; the last line is "ops/s: N".`)
		fs.PrintDefaults()
	}
	if len(args) > 0 && cli.IsHelp(args[0]) {
		return cli.Help(fs)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return cli.UsageError(fs, "want the mode first: register or resolve")
	}
	mode := args[0]
	if mode != "register" && mode != "resolve" {
		return cli.Unknown("rsp bench", "mode", mode, []string{"register", "resolve"}, "rsp bench -h")
	}
	if code, ok := cli.Parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
	}
	if *conns < 1 || *pes < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "rsp bench: -conns, -pes and -duration must be positive")
		return 2
	}
	addr := strings.Split(*registrar, ",")[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{addr: addr, pool: asap.PoolHandle(*pool), pes: *pes, items: uint32(*items)}
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
	fmt.Printf("mode: %s, %s, %.1f s\n", res.Mode, connText, res.Seconds)
	fmt.Printf("operations: %d (%d errors)\n", res.Ops, res.Errors)
	fmt.Printf("latency: p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us\n", res.P50us, res.P90us, res.P99us, res.MaxUs)
	fmt.Printf("ops/s: %.0f\n", res.OpsPerSec)
	return 0
}

type bench struct {
	addr  string
	pool  asap.PoolHandle
	pes   int
	items uint32
}

// benchConn is one ASAP connection with one request outstanding; it
// answers keep-alives while it waits.
type benchConn struct {
	c   transport.Conn
	buf []byte
}

func (b *bench) dial(ctx context.Context) (*benchConn, error) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, b.addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the registrar at %s: %w", b.addr, err)
	}
	return &benchConn{c: c, buf: make([]byte, 0, 256)}, nil
}

// call sends m and waits for the answer of type want. It uses no
// cancellable context per message (that costs a hook per call and skews
// the measurement): an interrupt closes the connections instead.
func (bc *benchConn) call(_ context.Context, m asap.Message, want asap.Type) (asap.Message, error) {
	ctx := context.Background()
	var err error
	if bc.buf, err = asap.Append(bc.buf[:0], m); err != nil {
		return nil, err
	}
	if err := bc.c.Send(ctx, transport.PPIDASAP, bc.buf); err != nil {
		return nil, err
	}
	for {
		_, msg, err := bc.c.Recv(ctx)
		if err != nil {
			return nil, err
		}
		typ, _ := asap.MessageType(msg) // 0 for an empty message
		if typ == asap.TypeEndpointKeepAlive {
			if ka, _, err := asap.Unpack(msg, nil); err == nil {
				k := ka.(*asap.EndpointKeepAlive)
				ack, _ := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: k.PoolHandle, ID: k.ID})
				_ = bc.c.Send(ctx, transport.PPIDASAP, ack)
			}
			continue
		}
		if typ != want {
			continue // e.g. an ASAP_ERROR about something else
		}
		ans, _, err := asap.Unpack(msg, nil)
		return ans, err
	}
}

func benchPE(id uint32, load uint32) asap.PoolElement {
	return asap.PoolElement{ID: id, Lifetime: 300000,
		User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: uint16(10000 + id%50000), Use: asap.UseDataAndControl, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		Policy: asap.Policy{Type: asap.PolicyLeastUsed, Load: load}}
}

func (b *bench) register(ctx context.Context, bc *benchConn, id, load uint32) error {
	ans, err := bc.call(ctx, &asap.Registration{PoolHandle: b.pool, PoolElement: benchPE(id, load)}, asap.TypeRegistrationResponse)
	if err != nil {
		return err
	}
	if r := ans.(*asap.RegistrationResponse); r.Reject {
		return fmt.Errorf("registration refused: %v", r.Error)
	}
	return nil
}

func (b *bench) run(ctx context.Context, mode string, conns int, d time.Duration, keep bool) (*benchResult, error) {
	cs := make([]*benchConn, conns)
	for i := range cs {
		bc, err := b.dial(ctx)
		if err != nil {
			return nil, err
		}
		defer bc.c.Close()
		cs[i] = bc
	}
	if mode == "resolve" { // fill the pool first
		for i := 0; i < b.pes; i++ {
			if err := b.register(ctx, cs[0], uint32(0x7f000000+i), 0); err != nil {
				return nil, err
			}
		}
	}
	stopWatch := context.AfterFunc(ctx, func() { // interrupt: unblock every call
		for _, bc := range cs {
			bc.c.Close()
		}
	})
	defer stopWatch()
	var ops, errs atomic.Int64
	lat := make([][]time.Duration, conns)
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bc := cs[i]
			n := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				var err error
				if mode == "register" {
					id := uint32(i*b.pes+n%b.pes) + 1
					err = b.register(ctx, bc, id, uint32(n/b.pes+1))
				} else {
					var ans asap.Message
					ans, err = bc.call(ctx, &asap.HandleResolution{PoolHandle: b.pool, HasItems: true, Items: b.items}, asap.TypeHandleResolutionResponse)
					if err == nil && ans.(*asap.HandleResolutionResponse).Error != nil {
						err = ans.(*asap.HandleResolutionResponse).Error
					}
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					if errors.Is(err, transport.ErrClosed) || ctx.Err() != nil {
						return
					}
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				ops.Add(1)
				n++
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if !keep && mode == "register" {
		for i, bc := range cs {
			for j := 0; j < b.pes; j++ {
				_, _ = bc.call(ctx, &asap.Deregistration{PoolHandle: b.pool, ID: uint32(i*b.pes+j) + 1}, asap.TypeDeregistrationResponse)
			}
		}
	}
	if mode == "resolve" {
		for i := 0; i < b.pes; i++ {
			_, _ = cs[0].call(ctx, &asap.Deregistration{PoolHandle: b.pool, ID: uint32(0x7f000000 + i)}, asap.TypeDeregistrationResponse)
		}
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		if e, ok := firstErr.Load().(error); ok {
			return nil, fmt.Errorf("no operation succeeded: %w", e)
		}
		return nil, errors.New("no operation completed")
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	res := &benchResult{Mode: mode, Conns: conns, Ops: ops.Load(), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		OpsPerSec: float64(ops.Load()) / elapsed.Seconds(), P50us: pct(0.5), P90us: pct(0.9), P99us: pct(0.99), MaxUs: float64(all[len(all)-1].Microseconds())}
	if e, ok := firstErr.Load().(error); ok {
		fmt.Fprintln(os.Stderr, "rsp bench: first error:", e)
	}
	return res, nil
}
