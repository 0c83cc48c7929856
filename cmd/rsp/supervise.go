package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/transport"
)

// superviseResult is what `rsp bench supervise -json` prints.
type superviseResult struct {
	PEs          int     `json:"pes"`
	Conns        int     `json:"conns"`
	Pools        int     `json:"pools"`
	RegisterSec  float64 `json:"register_seconds"`
	RegisterRate float64 `json:"registrations_per_sec"`
	Seconds      float64 `json:"seconds"` // the supervised run after registration
	// What the PEs saw: keep-alives received and acknowledged, and the
	// longest gap between two keep-alives of one PE.
	KeepAlivesReceived int64   `json:"keepalives_received"`
	AcksSent           int64   `json:"acks_sent"`
	MaxGapSec          float64 `json:"max_keepalive_gap_seconds"`
	PEsWithoutKeepAliv int     `json:"pes_without_keepalive"`
	// Re-registrations sent (every -reregister, as RSPLIB's PEs) and
	// accepted.
	ReregSent     int64 `json:"reregistrations_sent"`
	ReregAccepted int64 `json:"reregistrations_accepted"`
	// Missing is how many PEs the registrars no longer have at the end
	// (all were answering: every one is a false removal).
	Missing    int           `json:"missing_pes"`
	Registrars []superviseRS `json:"registrars,omitempty"`
	ResolveOps int64         `json:"resolutions"`
	ResolveP50 float64       `json:"resolve_p50_us"`
	ResolveP99 float64       `json:"resolve_p99_us"`
	ResolveMax float64       `json:"resolve_max_us"`
	FirstError string        `json:"first_error,omitempty"`
}

// superviseRS is one registrar's side, from its admin API over the run.
type superviseRS struct {
	HTTP           string  `json:"http"`
	PEs            int     `json:"pes"`
	OwnedPEs       int     `json:"owned_pes"`
	KeepAlivesSent float64 `json:"keepalives_sent"`
	Acks           float64 `json:"keepalive_acks"`
	Missed         float64 `json:"keepalives_missed"`
	Removals       float64 `json:"pe_removals"`
	CPUPercent     float64 `json:"cpu_percent"`
	RSSBytes       float64 `json:"rss_bytes"`
	RSSPerPE       float64 `json:"rss_bytes_per_pe"`
	RSSGrowthPerPE float64 `json:"rss_growth_bytes_per_pe"` // since before the registrations
	OpenFDs        float64 `json:"open_fds"`
}

func runSupervise(args []string) int {
	fs := flag.NewFlagSet("rsp bench supervise", flag.ContinueOnError)
	regs := fs.String("registrar", "tcp:127.0.0.1:3863", "registrar ASAP addresses, comma list: the connections are spread over them")
	https := fs.String("http", "", "the registrars' admin API addresses (host:port, comma list) for their counts, keep-alive metrics, CPU and memory")
	pes := fs.Int("pes", 10000, "PEs in all")
	conns := fs.Int("conns", 100, "associations the PEs share (as many as -pes: one each, as RSPLIB's PEs)")
	pools := fs.Int("pools", 100, "pools the PEs are spread over")
	duration := fs.Duration("duration", time.Minute, "how long to supervise after every PE registered")
	regConc := fs.Int("register-conns", 256, "associations registering at the same time")
	resolveEvery := fs.Duration("resolve-every", 2*time.Millisecond, "pause between the latency probe's resolutions")
	timeout := fs.Duration("timeout", 30*time.Second, "fail a registration the registrar does not answer within this long")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	rereg := fs.Duration("reregister", 30*time.Second, "re-register every PE this often, with a registration life of three times that (RSPLIB's defaults); 0: never, with a life of 300 s")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: rsp bench supervise [flags]

Registers -pes PEs over -conns associations spread over the registrars,
then lets the registrars supervise them for -duration: every
ENDPOINT_KEEP_ALIVE is answered at once. Meanwhile one more association
resolves the pools in a loop for the latency under that load. Reports the
keep-alives the PEs got and acknowledged, the longest gap between two of
one PE's, PEs missing at the end (false removals: every PE answered), and
with -http per registrar its PEs, keep-alive counters, CPU and resident
memory over the run. Like RSPLIB's PEs, each re-registers every
-reregister with a registration life of three times that (RSPLIB's
defaults: 30 s, 90 s). The PEs stay registered (their associations close
at the end, so the registrars remove them after the keep-alive timeout).`)
		fs.PrintDefaults()
	}
	if len(args) > 0 && cli.IsHelp(args[0]) {
		return cli.Help(fs)
	}
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if *pes < 1 || *conns < 1 || *conns > *pes || *pools < 1 || *duration <= 0 || *regConc < 1 {
		fmt.Fprintln(os.Stderr, "rsp bench supervise: -pes, -conns (at most -pes), -pools, -duration and -register-conns must be positive")
		return 2
	}
	if *rereg < 0 || (*rereg > 0 && *rereg < time.Second) || *rereg > 10*time.Minute {
		fmt.Fprintln(os.Stderr, "rsp bench supervise: -reregister must be 0 or between 1s and 10m")
		return 2
	}
	if err := checkFileLimit(*conns, openFileLimit()); err != nil {
		fmt.Fprintln(os.Stderr, "rsp bench supervise:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &supervise{addrs: strings.Split(*regs, ","), pes: *pes, conns: *conns, pools: *pools, timeout: *timeout,
		regConc: *regConc, resolveEvery: *resolveEvery, rereg: *rereg}
	if *https != "" {
		s.http = strings.Split(*https, ",")
	}
	res, err := s.run(ctx, *duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsp bench supervise:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return 0
	}
	fmt.Printf("PEs: %d over %d associations in %d pools, registered in %.1f s (%.0f/s)\n", res.PEs, res.Conns, res.Pools, res.RegisterSec, res.RegisterRate)
	fmt.Printf("supervised: %.0f s, keep-alives received %d, acknowledged %d, longest gap %.1f s, PEs without one %d\n",
		res.Seconds, res.KeepAlivesReceived, res.AcksSent, res.MaxGapSec, res.PEsWithoutKeepAliv)
	fmt.Printf("re-registrations: sent %d, accepted %d\n", res.ReregSent, res.ReregAccepted)
	fmt.Printf("resolutions under load: %d, p50 %.0f us, p99 %.0f us, max %.0f us\n", res.ResolveOps, res.ResolveP50, res.ResolveP99, res.ResolveMax)
	for _, r := range res.Registrars {
		fmt.Printf("registrar %s: %d PEs (%d homed), keep-alives sent %.0f, acks %.0f, missed %.0f, removals %.0f, CPU %.0f %%, RSS %.0f MiB (%.0f B per PE, %.0f B growth per PE), fds %.0f\n",
			r.HTTP, r.PEs, r.OwnedPEs, r.KeepAlivesSent, r.Acks, r.Missed, r.Removals, r.CPUPercent, r.RSSBytes/(1<<20), r.RSSPerPE, r.RSSGrowthPerPE, r.OpenFDs)
	}
	if res.FirstError != "" {
		fmt.Printf("first error: %s\n", res.FirstError)
	}
	fmt.Printf("false removals: %d\n", res.Missing)
	if res.Missing > 0 || res.FirstError != "" {
		return 1
	}
	return 0
}

// fileReserve is the open files the bench keeps beside its
// associations (the probe, the admin API scrapes, the runtime's own).
const fileReserve = 32

// checkFileLimit refuses a run whose associations do not fit in the open
// file limit (0: unknown, not checked), before any is dialled: half a
// run that fails on "too many open files" measures nothing.
func checkFileLimit(conns int, limit uint64) error {
	if limit == 0 || uint64(conns)+fileReserve <= limit {
		return nil
	}
	return fmt.Errorf("-conns %d: the open file limit is %d, and the bench needs one file per association plus %d (raise it with ulimit -n, or the hard limit with ulimit -Hn or prlimit --nofile, which needs CAP_SYS_RESOURCE, up to fs.nr_open; the registrar needs as many, plus 256)",
		conns, limit, fileReserve)
}

type supervise struct {
	addrs        []string
	http         []string
	pes, conns   int
	pools        int
	regConc      int
	timeout      time.Duration
	resolveEvery time.Duration
	rereg        time.Duration // re-registration interval (0: none)

	reregSent, reregOK atomic.Int64
	start              time.Time      // of the supervised run
	lastKA             []atomic.Int64 // per PE: nanoseconds since start of its last keep-alive (0: none)
	maxGap             atomic.Int64
	// ka counts keep-alives received and acknowledged together, so that a
	// result read while keep-alives still arrive sees a consistent pair
	// (a keep-alive counted received but not yet acknowledged read as a
	// lost ACK).
	ka       kaCount
	firstErr atomic.Value
}

func (s *supervise) fail(err error) { s.firstErr.CompareAndSwap(nil, err.Error()) }

func (s *supervise) pool(i int) asap.PoolHandle {
	return asap.PoolHandle(fmt.Sprintf("sv-%d", i%s.pools))
}

// peID is PE i's identifier (1-based, so 0 never appears).
func peID(i int) uint32 { return uint32(i) + 1 }

func (s *supervise) run(ctx context.Context, d time.Duration) (*superviseResult, error) {
	s.lastKA = make([]atomic.Int64, s.pes)
	before := s.scrapeAll()
	b := &bench{timeout: s.timeout}
	cs := make([]*benchConn, s.conns)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.c.Close()
			}
		}
	}()
	stopWatch := context.AfterFunc(ctx, func() {
		for _, c := range cs {
			if c != nil {
				c.c.Close()
			}
		}
	})
	defer stopWatch()
	// Register: -register-conns associations at a time, each its PEs in
	// turn; then it only answers keep-alives.
	t0 := time.Now()
	s.start = t0
	sem := make(chan struct{}, s.regConc)
	var wg, readers sync.WaitGroup
	var regErr atomic.Value
	for k := range cs {
		b.addr = s.addrs[k%len(s.addrs)]
		bc, err := b.dial(ctx, false)
		if err != nil {
			return nil, err
		}
		cs[k] = bc
	}
	for k, bc := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for i := k; i < s.pes; i += s.conns {
				if err := s.register(bc, i); err != nil {
					regErr.CompareAndSwap(nil, fmt.Errorf("PE %d: %w", i, err))
					return
				}
			}
			readers.Add(1)
			go func() { defer readers.Done(); s.serve(bc) }()
		}()
	}
	wg.Wait()
	if err, _ := regErr.Load().(error); err != nil {
		return nil, err
	}
	regTime := time.Since(t0)
	mid := s.scrapeAll()
	stopRereg := make(chan struct{})
	var reregDone sync.WaitGroup
	if s.rereg > 0 {
		reregDone.Add(1)
		go func() { defer reregDone.Done(); s.reregister(cs, stopRereg) }()
	}

	// Supervise for d, resolving meanwhile.
	runStart := time.Now()
	b.addr = s.addrs[0]
	probe, err := b.dial(ctx, true)
	if err != nil {
		return nil, err
	}
	defer probe.c.Close()
	var lat []time.Duration
	deadline := runStart.Add(d)
	for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		t := time.Now()
		ans, err := probe.call(&asap.HandleResolution{PoolHandle: s.pool(n), HasItems: true, Items: 3}, asap.TypeHandleResolutionResponse)
		if err != nil {
			s.fail(fmt.Errorf("resolution: %w", err))
			break
		}
		if hr := ans.(*asap.HandleResolutionResponse); hr.Error != nil {
			s.fail(fmt.Errorf("resolution of %s refused: %w", s.pool(n), hr.Error))
		}
		lat = append(lat, time.Since(t))
		time.Sleep(s.resolveEvery)
	}
	elapsed := time.Since(runStart)
	close(stopRereg)
	reregDone.Wait()
	after := s.scrapeAll()

	kaRecv, kaAcked := s.ka.load()
	res := &superviseResult{PEs: s.pes, Conns: s.conns, Pools: s.pools, RegisterSec: regTime.Seconds(),
		RegisterRate: float64(s.pes) / regTime.Seconds(), Seconds: elapsed.Seconds(),
		KeepAlivesReceived: kaRecv, AcksSent: kaAcked, ResolveOps: int64(len(lat)),
		ReregSent: s.reregSent.Load(), ReregAccepted: s.reregOK.Load()}
	// A PE whose last keep-alive is older than its gap so far is late now.
	now := time.Since(s.start).Nanoseconds()
	maxGap := s.maxGap.Load()
	for i := range s.lastKA {
		last := s.lastKA[i].Load()
		if last == 0 {
			res.PEsWithoutKeepAliv++
			continue
		}
		maxGap = max(maxGap, now-last)
	}
	res.MaxGapSec = time.Duration(maxGap).Seconds()
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
		res.ResolveP50, res.ResolveP99, res.ResolveMax = pct(0.5), pct(0.99), float64(lat[len(lat)-1].Microseconds())
	}
	for i, h := range s.http {
		a, m, z := after[i], mid[i], before[i]
		r := superviseRS{HTTP: h, PEs: a.pes, OwnedPEs: a.owned,
			KeepAlivesSent: a.m["rsp_keepalives_sent_total"] - m.m["rsp_keepalives_sent_total"],
			Acks:           a.m["rsp_keepalive_acks_total"] - m.m["rsp_keepalive_acks_total"],
			Missed:         a.m["rsp_keepalives_missed_total"] - m.m["rsp_keepalives_missed_total"],
			Removals:       a.m["rsp_pe_removals_total"] - m.m["rsp_pe_removals_total"],
			CPUPercent:     100 * (a.m["process_cpu_seconds_total"] - m.m["process_cpu_seconds_total"]) / elapsed.Seconds(),
			RSSBytes:       a.m["process_resident_memory_bytes"], OpenFDs: a.m["process_open_fds"]}
		r.RSSPerPE = r.RSSBytes / float64(s.pes)
		r.RSSGrowthPerPE = (r.RSSBytes - z.m["process_resident_memory_bytes"]) / float64(s.pes)
		res.Missing = max(res.Missing, s.pes-a.pes)
		res.Registrars = append(res.Registrars, r)
	}
	if e, _ := s.firstErr.Load().(string); e != "" {
		res.FirstError = e
	}
	for _, c := range cs {
		c.c.Close()
	}
	readers.Wait()
	return res, nil
}

// register registers PE i on bc, answering keep-alives meanwhile.
func (s *supervise) register(bc *benchConn, i int) error {
	req, err := s.registration(bc, i)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := bc.c.Send(sctx, transport.PPIDASAP, req); err != nil {
		return err
	}
	for {
		_, msg, err := bc.c.Recv(sctx)
		if err != nil {
			return err
		}
		m, _, err := asap.Unpack(msg, nil)
		if err != nil {
			return fmt.Errorf("undecodable answer: %w", err)
		}
		switch a := m.(type) {
		case *asap.RegistrationResponse:
			if a.Reject {
				return fmt.Errorf("registration refused: %w", a.Error)
			}
			return nil
		case *asap.Error:
			return fmt.Errorf("ASAP_ERROR: %w", &a.Error)
		case *asap.EndpointKeepAlive:
			s.keepAlive(bc, a)
		}
	}
}

// registration is PE i's registration on bc.
func (s *supervise) registration(bc *benchConn, i int) ([]byte, error) {
	pe := bc.pe(peID(i), 0)
	pe.Policy = asap.Policy{Type: asap.PolicyRoundRobin}
	if s.rereg > 0 {
		pe.Lifetime = uint32(3 * s.rereg / time.Millisecond)
	}
	return asap.Pack(&asap.Registration{PoolHandle: s.pool(i), PoolElement: pe})
}

// reregister re-registers every PE once per s.rereg, spread evenly over
// the interval, until stop closes. The answers come to serve.
func (s *supervise) reregister(cs []*benchConn, stop <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	start := time.Now()
	for round := 1; ; round++ {
		for i := 0; i < s.pes; i++ {
			at := start.Add(time.Duration(round-1)*s.rereg + s.rereg*time.Duration(i)/time.Duration(s.pes))
			if d := time.Until(at); d > time.Millisecond {
				t.Reset(d)
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
			bc := cs[i%s.conns]
			req, err := s.registration(bc, i)
			if err != nil {
				s.fail(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			err = bc.c.Send(ctx, transport.PPIDASAP, req)
			cancel()
			if err != nil {
				select {
				case <-stop:
				default:
					s.fail(fmt.Errorf("re-registration of PE %d: %w", i, err))
				}
				return
			}
			s.reregSent.Add(1)
		}
	}
}

// serve answers keep-alives on bc until it closes.
func (s *supervise) serve(bc *benchConn) {
	for {
		_, msg, err := bc.c.Recv(context.Background())
		if err != nil {
			if !errors.Is(err, transport.ErrClosed) && !errors.Is(err, io.EOF) {
				s.fail(fmt.Errorf("PE association: %w", err))
			}
			return
		}
		if m, _, err := asap.Unpack(msg, nil); err == nil {
			switch m := m.(type) {
			case *asap.EndpointKeepAlive:
				s.keepAlive(bc, m)
			case *asap.RegistrationResponse:
				if m.Reject {
					s.fail(fmt.Errorf("re-registration of PE %d refused: %w", m.ID, m.Error))
				} else {
					s.reregOK.Add(1)
				}
			}
		}
	}
}

func (s *supervise) keepAlive(bc *benchConn, k *asap.EndpointKeepAlive) {
	if i := int(k.ID) - 1; i >= 0 && i < len(s.lastKA) {
		now := time.Since(s.start).Nanoseconds()
		if last := s.lastKA[i].Swap(now); last != 0 {
			for g := now - last; ; {
				cur := s.maxGap.Load()
				if g <= cur || s.maxGap.CompareAndSwap(cur, g) {
					break
				}
			}
		}
	}
	ack, err := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: k.PoolHandle, ID: k.ID})
	if err != nil {
		s.ka.add(false)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.ka.add(bc.c.Send(ctx, transport.PPIDASAP, ack) == nil)
}

// kaCount is a pair of counters updated and read together.
type kaCount struct {
	mu          sync.Mutex
	recv, acked int64
}

// add counts one keep-alive received, and acknowledged if acked.
func (c *kaCount) add(acked bool) {
	c.mu.Lock()
	c.recv++
	if acked {
		c.acked++
	}
	c.mu.Unlock()
}

func (c *kaCount) load() (recv, acked int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recv, c.acked
}

// scraped is one registrar's status and metrics at one moment.
type scraped struct {
	pes, owned int
	m          map[string]float64 // metric name -> value, summed over labels
}

func (s *supervise) scrapeAll() []scraped {
	out := make([]scraped, len(s.http))
	for i, h := range s.http {
		out[i] = scrape(h)
	}
	return out
}

func scrape(h string) scraped {
	sc := scraped{m: map[string]float64{}}
	cl := &http.Client{Timeout: 10 * time.Second}
	if resp, err := cl.Get("http://" + h + "/v1/status"); err == nil {
		var st struct {
			PEs      int `json:"pes"`
			OwnedPEs int `json:"owned_pes"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		sc.pes, sc.owned = st.PEs, st.OwnedPEs
	}
	resp, err := cl.Get("http://" + h + "/metrics")
	if err != nil {
		return sc
	}
	defer resp.Body.Close()
	sn := bufio.NewScanner(resp.Body)
	sn.Buffer(make([]byte, 64<<10), 1<<20)
	for sn.Scan() {
		line := sn.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(key, "{")
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			sc.m[name] += v
		}
	}
	return sc
}
