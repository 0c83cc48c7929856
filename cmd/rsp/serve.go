package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/transport"
)

func runServe(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, os.Stderr)
}

// service is a demo application: what a PE answers to a message.
type service interface {
	// reply answers the n-th message of a session (n counts from 0); nil
	// sends nothing.
	reply(msg []byte, n uint64) []byte
}

// talker is a service that talks first, as RFC 867 daytime and RFC 864
// chargen over TCP: it writes to a session from its start whatever the
// pool user sends (that is read and discarded), and when talk returns
// the PE closes the session.
type talker interface {
	talk(ctx context.Context, send func([]byte) error)
}

type echoService struct{}

func (echoService) reply(msg []byte, _ uint64) []byte { return msg }

type discardService struct{}

func (discardService) reply([]byte, uint64) []byte { return nil }

// daytimeService is RFC 867 as RSPLIB's rspserver -daytime serves it
// (src/standardservices.cc): when a session starts, one line with the
// local date and time in RSPLIB's format, then the session is closed.
type daytimeService struct{ now func() time.Time }

const daytimeLayout = "Monday, 02-January-2006 15:04:05.000000\n"

func (d daytimeService) reply([]byte, uint64) []byte { return nil }

func (d daytimeService) talk(_ context.Context, send func([]byte) error) {
	_ = send([]byte(d.now().Format(daytimeLayout)))
}

// chargenService is RFC 864: from the start of a session, an endless
// stream of 72-character lines of the 95 printable ASCII characters, each
// line starting one character further (the RFC's pattern), until the pool
// user closes the session. Each message carries chargenLines lines (1022
// bytes, near the 1024-byte messages of RSPLIB's rspserver -chargen).
type chargenService struct{}

const chargenLines = 14

func (chargenService) reply([]byte, uint64) []byte { return nil }

// line is the n-th line of the pattern.
func (chargenService) line(n uint64) []byte {
	const first, count, width = ' ', 95, 72
	line := make([]byte, 0, width+1)
	for i := uint64(0); i < width; i++ {
		line = append(line, byte(first+(n+i)%count))
	}
	return append(line, '\n')
}

func (c chargenService) talk(ctx context.Context, send func([]byte) error) {
	for n := uint64(0); ctx.Err() == nil; n += chargenLines {
		var msg []byte
		for i := uint64(0); i < chargenLines; i++ {
			msg = append(msg, c.line(n+i)...)
		}
		if send(msg) != nil {
			return
		}
	}
}

// services are the demo services. Replies carry the PPID of the message
// they answer; what a talker sends carries PPID 0, as RSPLIB's.
var services = map[string]service{
	"echo":    echoService{},
	"discard": discardService{},
	"daytime": daytimeService{now: time.Now},
	"chargen": chargenService{},
}

// The session cookie of rsp serve: a tag and the number of messages the
// session was served, 12 bytes (a multiple of 4, as RSPLIB's parser
// needs).
var cookieTag = [4]byte{'r', 's', 'p', '1'}

func encodeCookie(served uint64) []byte {
	return binary.BigEndian.AppendUint64(cookieTag[:], served)
}

func decodeCookie(b []byte) (uint64, bool) {
	if len(b) != 12 || [4]byte(b[:4]) != cookieTag {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[4:]), true
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rsp serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf registrarFlags
	rf.bind(fs)
	var cf cspFlags
	cf.bind(fs)
	pool := fs.String("pool", "", "pool handle to register in (required)")
	svcName := fs.String("service", "echo", "demo service: echo, discard, daytime or chargen")
	listen := fs.String("listen", ":0", "service address, [tcp:|sctp:]host:port (no prefix: SCTP and TCP; wildcard hosts register the address the registrar sees)")
	asapAddr := fs.String("asap", "", "the PE's ASAP endpoint, where a registrar that takes it over reaches it (default: port 0 on every address, with -listen's tcp: or sctp: prefix)")
	policyFlag := fs.String("policy", "rr", "member selection policy and values: rr, wrr:W, rand, wrand:W, pri:P, lu[:LOAD], lud[:LOAD[:DEG]], ... (LOAD as 25% or 0.25)")
	idFlag := fs.String("id", "0", "PE identifier, decimal or 0x-hex (0: random)")
	lifetime := fs.Duration("lifetime", 0, "registration life (default 3 x -rereg)")
	rereg := fs.Duration("rereg", pe.DefaultReregInterval, "re-registration interval")
	cookies := fs.Bool("cookies", false, "send an ASAP cookie with the session's state after each message, and restore it from a cookie echo (default on for echo)")
	cardPEs := fs.Int("card-pes", 3, "send each pool user a business card naming up to this many other PEs of the pool to fail over to (0: no card)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: rsp serve -pool HANDLE [-service echo|discard|daytime|chargen] [flags]

Runs a pool element with a demo service: registers it in the pool at a
registrar, renews the registration, answers keep-alives, and serves pool
users. Logs "pe registered" once registered; SIGINT or SIGTERM deregisters
it and exits.`)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q (flags start with -)", fs.Args())
	}
	if *asapAddr == "" {
		*asapAddr = defaultPEASAP(*listen)
	}
	cookiesSet := false
	fs.Visit(func(f *flag.Flag) { cookiesSet = cookiesSet || f.Name == "cookies" })
	if !cookiesSet {
		*cookies = *svcName == "echo"
	}
	svc, ok := services[*svcName]
	if !ok {
		fmt.Fprintf(stderr, "rsp serve: -service %q: want echo, discard, daytime or chargen\n", *svcName)
		return 2
	}
	if *pool == "" {
		fmt.Fprintln(stderr, "rsp serve: -pool is required: the pool handle to register in")
		return 2
	}
	pol, err := parsePolicy(*policyFlag)
	if err != nil {
		fmt.Fprintln(stderr, "rsp serve: -policy:", err)
		return 2
	}
	id, err := parseID(*idFlag)
	if err != nil {
		fmt.Fprintln(stderr, "rsp serve: -id:", err)
		return 2
	}
	if err := cf.check(); err != nil {
		fmt.Fprintln(stderr, "rsp serve:", err)
		return 2
	}
	if *cardPEs < 0 || *cardPEs > 1000 {
		fmt.Fprintln(stderr, "rsp serve: -card-pes: 0 to 1000 PEs")
		return 2
	}
	log, err := rf.logger("rsp-serve", stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rsp serve:", err)
		return 2
	}

	scfg := pe.DefaultServerConfig()
	scfg.Logger = log.Named("server")
	srv, err := pe.Listen(ctx, *listen, scfg)
	if err != nil {
		fmt.Fprintln(stderr, "rsp serve:", err)
		return 1
	}
	defer srv.Close()
	cfg := pe.DefaultConfig()
	cfg.PoolHandle = asap.PoolHandle(*pool)
	cfg.ID = id
	cfg.User = srv.Transport()
	cfg.Policy = pol
	cfg.ReregInterval = *rereg
	cfg.Lifetime = *lifetime
	cfg.ASAP = *asapAddr
	cfg.Registrars = rf.list()
	if cfg.TLS, err = rf.tls.config(); err != nil {
		fmt.Fprintln(stderr, "rsp serve:", err)
		return 2
	}
	cfg.Announce = rf.announce
	cfg.AnnounceInterface = rf.ifname
	cfg.Logger = log
	el, err := pe.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "rsp serve:", err)
		return 2
	}
	closeElement := func() int {
		if err := el.Close(); err != nil {
			log.Warn("deregistration failed", "error", err)
		}
		return 0
	}
	if code, done := registerUntilDone(ctx, el, log, stderr); done {
		closeElement()
		return code
	}
	d := &demo{svc: svc, cookies: *cookies, log: log, el: el, cardPEs: *cardPEs}
	if *cardPEs > 0 {
		// The candidates come from the pool's registrar, as a pool user's
		// resolution does (cached a few seconds, not asked per session).
		ucfg, _ := rf.userConfig(log.Named("card")) // its TLS files loaded above
		ucfg.Items = uint32(*cardPEs + 1)           // this PE may be among them
		if d.resolver, err = pu.New(ucfg); err != nil {
			fmt.Fprintln(stderr, "rsp serve:", err)
			closeElement()
			return 2
		}
		defer d.resolver.Close()
	}
	stopCSP, err := cf.start(csp.ID(csp.GroupPoolElement, uint64(el.ID())), func() *csp.Report { return peReport(el, srv, d) }, log)
	if err != nil {
		fmt.Fprintln(stderr, "rsp serve:", err)
		closeElement()
		return 2
	}
	defer stopCSP()
	log.Info("serving", "service", *svcName, "listen", transportLabel(srv.Transport()), "cookies", *cookies)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := srv.Accept(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, pe.ErrClosed) {
					log.Error("accepting pool users failed", "error", err)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				d.session(ctx, s)
			}()
		}
	}()
	<-ctx.Done()
	log.Info("shutting down: deregistering")
	code := closeElement()
	srv.Close()
	wg.Wait()
	return code
}

// registerUntilDone registers, retrying while no registrar answers. done
// is true when serve must stop: refused (exit 1) or interrupted (exit 0).
func registerUntilDone(ctx context.Context, el *pe.Element, log hclog.Logger, stderr io.Writer) (code int, done bool) {
	backoff := time.Second
	for {
		err := el.Register(ctx)
		if err == nil {
			return 0, false
		}
		if ctx.Err() != nil {
			return 0, true
		}
		var rerr *pe.RegistrationError
		if errors.As(err, &rerr) {
			fmt.Fprintln(stderr, "rsp serve:", err)
			return 1, true
		}
		log.Warn("registration failed; retrying", "error", explain(err), "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, true
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// demo serves pool users with a service.
type demo struct {
	svc      service
	cookies  bool
	log      hclog.Logger
	sessions atomic.Int64 // pool users served now
	el       *pe.Element
	// cardPEs is how many other PEs of the pool a business card names;
	// resolver finds them (nil: no cards).
	cardPEs  int
	resolver *pu.User
}

// sendCard sends the pool user a business card with up to cardPEs other
// PEs of the pool, as the registrar chooses them by the pool's policy
// (RFC 5352: the PEs to fail over to, in order). No other PE, no card.
func (d *demo) sendCard(ctx context.Context, s *pe.Session, log hclog.Logger) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pes, err := d.resolver.Resolve(rctx, d.el.PoolHandle())
	if err != nil {
		log.Debug("no business card: the pool's PEs are unknown", "error", explain(err))
		return
	}
	var cands []asap.PoolElement
	for _, p := range pes {
		if p.ID != d.el.ID() && len(cands) < d.cardPEs {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		log.Debug("no business card: no other PE in the pool")
		return
	}
	if err := s.SendBusinessCard(rctx, &asap.BusinessCard{PoolHandle: d.el.PoolHandle(), PEs: cands}); err != nil {
		log.Debug("business card not sent", "error", err)
		return
	}
	ids := make([]string, len(cands))
	for i, p := range cands {
		ids[i] = fmt.Sprintf("0x%08x", p.ID)
	}
	log.Info("business card sent", "candidates", strings.Join(ids, ","))
}

// peReport is rsp serve's CSP status, as RSPLIB's PEs report it: the
// number of sessions, the service's location, the load of an adaptive
// policy, and the association with the home registrar (the PE's
// sessions, being incoming, are not listed).
func peReport(el *pe.Element, srv *pe.Server, d *demo) *csp.Report {
	t := srv.Transport()
	r := &csp.Report{Status: sessions(int(d.sessions.Load())), Location: cspLocation(t.Addrs, t.Port), Workload: csp.WorkloadUnknown}
	if p := el.Policy(); p.Type.Adaptive() {
		r.Workload = csp.Workload(float64(p.Load) / 0xFFFFFFFF)
	}
	if st := el.Status(); st.Registered {
		r.Associations = append(r.Associations, csp.Association{Receiver: csp.ID(csp.GroupRegistrar, uint64(st.Home)),
			Duration: durationSince(st.Since), Protocol: ipProto(st.Transport), PPID: transport.PPIDASAP})
	}
	return r
}

func (d *demo) session(ctx context.Context, s *pe.Session) {
	log := d.log.With("pu", s.RemoteAddr().String())
	d.sessions.Add(1)
	defer d.sessions.Add(-1)
	log.Info("pool user connected")
	if d.resolver != nil {
		cardDone := make(chan struct{})
		go func() { defer close(cardDone); d.sendCard(ctx, s, log) }()
		defer func() { <-cardDone }()
	}
	var served uint64
	t, talking := d.svc.(talker)
	if talking {
		tctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			t.talk(tctx, func(b []byte) error { return s.Send(tctx, 0, b) })
			s.Close() // the service is done: end the session (Recv returns)
		}()
		defer func() { stop(); s.Close(); <-done }()
	}
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			log.Info("pool user left", "messages_served", served)
			return
		}
		switch m.Kind {
		case pe.KindCookieEcho:
			n, ok := decodeCookie(m.Data)
			if !ok {
				log.Warn("ignoring a cookie echo that rsp serve did not make", "bytes", len(m.Data))
				continue
			}
			served = n
			log.Info("restored session from cookie", "messages_served_before", n)
		case pe.KindBusinessCard:
			c := m.BusinessCard
			args := []any{"pool", string(c.PoolHandle), "pes", len(c.PEs)}
			if len(c.PEs) > 0 {
				args = append(args, "first", fmt.Sprintf("0x%08x %s", c.PEs[0].ID, transportLabel(c.PEs[0].User)))
			}
			log.Info("business card from the pool user", args...)
		case pe.KindData:
			if talking {
				continue // a talker reads and discards
			}
			reply := d.svc.reply(m.Data, served)
			served++
			if reply != nil {
				if err := s.Send(ctx, m.PPID, reply); err != nil {
					log.Info("pool user left", "messages_served", served, "error", err)
					return
				}
			}
			if d.cookies {
				if err := s.SendCookie(ctx, encodeCookie(served)); err != nil {
					log.Info("pool user left", "messages_served", served, "error", err)
					return
				}
			}
		}
	}
}

// transportLabel formats a transport parameter: "tcp 127.0.0.1:7000".
func transportLabel(t asap.Transport) string {
	return fmt.Sprintf("%s %s:%d", t.Kind, transport.HostList(t.Addrs), t.Port)
}

// defaultPEASAP is the PE's ASAP endpoint when -asap is not given: a free
// port on every address, over the transport of -listen when it names one
// (so a tcp: PE does not try SCTP, nor say that the kernel lacks it).
func defaultPEASAP(listen string) string {
	for _, p := range []string{"tcp:", "sctp:"} {
		if strings.HasPrefix(listen, p) {
			return p + pe.DefaultASAP
		}
	}
	return pe.DefaultASAP
}
