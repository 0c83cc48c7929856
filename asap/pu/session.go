package pu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
	"github.com/rserpool-go/registrar/transport"
)

// Failover describes one failover of a Session.
type Failover struct {
	// From and To are the PE identifiers.
	From, To uint32
	// Reason is the failure of the old PE.
	Reason error
	// CookieEchoed tells whether the last cookie was sent to the new PE
	// (ASAP_COOKIE_ECHO, before any data).
	CookieEchoed bool
	// FromBusinessCard tells whether the new PE came from the old PE's
	// business card.
	FromBusinessCard bool
}

// Session exchanges application messages with "a PE of the pool": it
// connects to a PE chosen by the pool policy, keeps the last cookie the PE
// sent (ASAP_COOKIE) and the failover candidates of its business card,
// and when the PE fails (the connection breaks, a send fails, or the
// application calls Failover) it reports the PE unreachable, connects to
// another PE (from the business card first, else from the resolution) and
// hands it the cookie (ASAP_COOKIE_ECHO) before anything else.
//
// Send, Failover and Close are safe for concurrent use; Recv is for one
// goroutine. Messages sent to a PE that failed before it answered are lost:
// the application resends what it needs (the cookie tells the new PE
// where the session stood).
type Session struct {
	u   *User
	h   asap.PoolHandle
	cfg SessionConfig
	log hclog.Logger

	in     chan inMsg
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	broken chan struct{} // closed when the session is unusable
	wg     sync.WaitGroup
	fo     chan struct{} // one connect or failover at a time

	mu    sync.Mutex
	conn  transport.Conn
	pe    asap.PoolElement
	since time.Time // when conn was set up
	gen   uint64
	// cardOnce sends the business card on conn (before its first data).
	cardOnce *sync.Once
	cookie   []byte
	card     []asap.PoolElement
	failed   map[uint32]bool
	err      error // why the session is broken
	closed   bool
}

type inMsg struct {
	ppid uint32
	data []byte
}

// Connect opens a session with a PE of the pool.
func (u *User) Connect(ctx context.Context, h asap.PoolHandle, cfg SessionConfig) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Session{u: u, h: h, cfg: cfg, log: u.log.With("pool", string(h)),
		in: make(chan inMsg, 16), broken: make(chan struct{}), fo: make(chan struct{}, 1),
		failed: map[uint32]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		s.cancel()
		return nil, ErrClosed
	}
	u.sessions[s] = struct{}{}
	u.mu.Unlock()
	s.fo <- struct{}{}
	pe, conn, _, err := s.connectAny(ctx, 0)
	if err == nil {
		err = s.install(conn, pe)
	}
	<-s.fo
	if err != nil {
		s.Close()
		return nil, err
	}
	s.log.Debug("session connected", "pe", fmt.Sprintf("0x%08x", pe.ID))
	return s, nil
}

// PE is the PE the session talks to now.
func (s *Session) PE() asap.PoolElement {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pe
}

// Connection describes the connection to the current PE: its transport
// and when it was set up (the session's last connect or failover); ok is
// false during a failover.
func (s *Session) Connection() (kind transport.Kind, since time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return 0, time.Time{}, false
	}
	return s.conn.Kind(), s.since, true
}

// Cookie is the last cookie a PE sent (nil if none).
func (s *Session) Cookie() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.cookie...)
}

// Send sends data with SessionConfig.PPID. When the PE fails, the session
// fails over and sends data to the new PE.
func (s *Session) Send(ctx context.Context, data []byte) error {
	return s.SendPPID(ctx, s.cfg.PPID, data)
}

// SendPPID sends data with a payload protocol identifier other than 11.
func (s *Session) SendPPID(ctx context.Context, ppid uint32, data []byte) error {
	if ppid == transport.PPIDASAP {
		return errors.New("pu: PPID 11 is ASAP's")
	}
	for {
		conn, gen, err := s.current(ctx)
		if err != nil {
			return err
		}
		s.sendCard(ctx, conn, gen)
		err = conn.Send(ctx, ppid, data)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.failover(ctx, gen, err); err != nil {
			return err
		}
	}
}

// current waits out a failover in progress and returns the connection.
func (s *Session) current(ctx context.Context) (transport.Conn, uint64, error) {
	for {
		s.mu.Lock()
		conn, gen, err := s.conn, s.gen, s.err
		s.mu.Unlock()
		if err != nil {
			return nil, 0, err
		}
		if conn != nil {
			return conn, gen, nil
		}
		select { // a failover is running: wait for it
		case s.fo <- struct{}{}:
			<-s.fo
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-s.broken:
		}
	}
}

// Recv returns the next application message from the PE (ASAP control
// messages are handled inside). It returns an error once the session is
// closed, or broken because no PE could be reached.
func (s *Session) Recv(ctx context.Context) (ppid uint32, data []byte, err error) {
	select {
	case m := <-s.in:
		return m.ppid, m.data, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-s.broken:
		select { // deliver what arrived before
		case m := <-s.in:
			return m.ppid, m.data, nil
		default:
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return 0, nil, s.err
	}
}

// Failover abandons the current PE (for example because it did not answer
// in time), reports it unreachable and moves the session to another PE.
func (s *Session) Failover(ctx context.Context, reason error) error {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if reason == nil {
		reason = errors.New("failover requested")
	}
	return s.failover(ctx, gen, reason)
}

// failover replaces the connection of generation gen; a later generation
// means another goroutine already did.
func (s *Session) failover(ctx context.Context, gen uint64, reason error) error {
	select {
	case s.fo <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.broken:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	}
	ev, err := s.failoverLocked(ctx, gen, reason)
	<-s.fo
	if err == nil && ev != nil {
		if s.cfg.OnFailover != nil {
			s.cfg.OnFailover(*ev)
		}
	}
	return err
}

func (s *Session) failoverLocked(ctx context.Context, gen uint64, reason error) (*Failover, error) {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	if s.gen != gen {
		s.mu.Unlock()
		return nil, nil
	}
	old, oldConn := s.pe, s.conn
	s.conn = nil
	s.failed[old.ID] = true
	s.mu.Unlock()
	if oldConn != nil {
		oldConn.Close()
	}
	s.log.Info("PE failed; failing over", "pe", fmt.Sprintf("0x%08x", old.ID), "reason", reason)
	s.dropPE(old.ID)
	pe, conn, fromCard, err := s.connectAny(ctx, old.ID)
	if err == nil {
		err = s.install(conn, pe)
	}
	if err != nil {
		err = fmt.Errorf("session with pool %q: failover from PE 0x%08x: %w", s.h, old.ID, err)
		s.breakWith(err)
		return nil, err
	}
	s.mu.Lock()
	echoed := s.cookie != nil
	s.mu.Unlock()
	s.log.Info("failover done", "from", fmt.Sprintf("0x%08x", old.ID), "to", fmt.Sprintf("0x%08x", pe.ID), "cookie_echoed", echoed)
	return &Failover{From: old.ID, To: pe.ID, Reason: reason, CookieEchoed: echoed, FromBusinessCard: fromCard}, nil
}

// dropPE takes a PE that failed out of the resolution cache and, with
// ReportUnreachable, reports it to the registrar in the background.
func (s *Session) dropPE(id uint32) {
	if s.cfg.ReportUnreachable {
		s.u.reportAsync(s.h, id)
	} else {
		s.u.evict(s.h, id)
	}
}

// breakWith makes the session unusable.
func (s *Session) breakWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.broken)
	}
}

// connectAny connects to a PE: the business card's candidates first, then
// the resolution (cached, then fresh), skipping PEs that failed in this
// session and avoid. With a cookie, it is echoed before anything else.
func (s *Session) connectAny(ctx context.Context, avoid uint32) (asap.PoolElement, transport.Conn, bool, error) {
	var tried []string
	s.mu.Lock()
	card := append([]asap.PoolElement(nil), s.card...)
	s.mu.Unlock()
	try := func(pes []asap.PoolElement, fromCard bool) (asap.PoolElement, transport.Conn, bool, bool) {
		for _, pe := range pes {
			s.mu.Lock()
			skip := pe.ID == avoid || s.failed[pe.ID]
			s.mu.Unlock()
			if skip {
				continue
			}
			conn, err := s.dial(ctx, pe)
			if err != nil {
				tried = append(tried, fmt.Sprintf("0x%08x: %v", pe.ID, err))
				if ctx.Err() != nil {
					return asap.PoolElement{}, nil, false, true
				}
				s.mu.Lock()
				s.failed[pe.ID] = true
				s.mu.Unlock()
				s.dropPE(pe.ID)
				continue
			}
			return pe, conn, fromCard, true
		}
		return asap.PoolElement{}, nil, false, false
	}
	if pe, conn, fc, done := try(card, true); done {
		return pe, conn, fc, s.doneErr(ctx, conn, tried)
	}
	pes, err := s.u.Resolve(ctx, s.h)
	if err == nil {
		if pe, conn, fc, done := try(pes, false); done {
			return pe, conn, fc, s.doneErr(ctx, conn, tried)
		}
	}
	// The cache may be stale: ask the registrar.
	pes, err = s.u.resolve(ctx, s.h)
	if err != nil {
		if len(tried) > 0 {
			return asap.PoolElement{}, nil, false, fmt.Errorf("%w (tried %s); %w", ErrNoPE, strings.Join(tried, ", "), err)
		}
		return asap.PoolElement{}, nil, false, err
	}
	if pe, conn, fc, done := try(pes, false); done {
		return pe, conn, fc, s.doneErr(ctx, conn, tried)
	}
	// Last resort: PEs that failed earlier in this session may be back.
	s.mu.Lock()
	retry := len(s.failed) > 0
	s.failed = map[uint32]bool{}
	s.mu.Unlock()
	if retry {
		if pe, conn, fc, done := try(pes, false); done {
			return pe, conn, fc, s.doneErr(ctx, conn, tried)
		}
	}
	if len(tried) == 0 {
		return asap.PoolElement{}, nil, false, fmt.Errorf("%w in pool %q: every PE the registrar names failed in this session", ErrNoPE, s.h)
	}
	return asap.PoolElement{}, nil, false, fmt.Errorf("%w in pool %q (tried %s)", ErrNoPE, s.h, strings.Join(tried, ", "))
}

// doneErr is the error of a try that stopped: none with a connection.
func (s *Session) doneErr(ctx context.Context, conn transport.Conn, tried []string) error {
	if conn != nil {
		return nil
	}
	return fmt.Errorf("connect to a PE of pool %q: %w (tried %s)", s.h, ctx.Err(), strings.Join(tried, ", "))
}

// dial connects to a PE's user transport ("data plus control": TCP with
// mux framing, SCTP with PPIDs) and echoes the cookie, if any.
func (s *Session) dial(ctx context.Context, pe asap.PoolElement) (transport.Conn, error) {
	spec, ok := regclient.Spec(pe.User)
	if !ok {
		return nil, fmt.Errorf("unusable transport %v", pe.User.Kind)
	}
	if pe.User.Use != asap.UseDataAndControl && pe.User.Kind == asap.ParamTCPTransport {
		return nil, errors.New("TCP data-only transport: this library speaks data plus control (mux framing) on TCP")
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := s.u.net.Dial(dctx, spec, regclient.DataConfig(s.cfg.MaxMessageSize, s.log))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cookie := s.cookie
	s.mu.Unlock()
	if cookie != nil {
		b, err := asap.Pack(&asap.CookieEcho{Cookie: cookie})
		if err == nil {
			err = conn.Send(dctx, transport.PPIDASAP, b)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("cookie echo: %w", err)
		}
	}
	return conn, nil
}

// sendCard sends the pool user's business card on the connection of
// generation gen once, before the first message the application sends on
// it (concurrent senders wait for it, so it comes first). Not at once on
// connecting: a PE that talks first and closes (RFC 867 daytime) would
// answer a message arriving after its close with an ABORT, which throws
// away what it sent. A card that cannot be sent is only logged: the data
// send that follows meets the same fate and fails the session over.
func (s *Session) sendCard(ctx context.Context, conn transport.Conn, gen uint64) {
	if s.cfg.NoBusinessCard {
		return
	}
	s.mu.Lock()
	once := s.cardOnce
	ok := s.gen == gen && once != nil
	s.mu.Unlock()
	if !ok {
		return
	}
	once.Do(func() {
		b, err := asap.Pack(s.businessCard(conn))
		if err == nil {
			err = conn.Send(ctx, transport.PPIDASAP, b)
		}
		if err != nil {
			s.log.Debug("business card not sent", "error", err)
		}
	})
}

// businessCard is the pool user's ASAP_BUSINESS_CARD for the PE at the
// other end of conn: its own pool and PEs (SessionConfig.OwnPool), or
// the session's pool and a Pool Element parameter with the pool user's
// own transport (identifier 0: it is no PE).
func (s *Session) businessCard(conn transport.Conn) *asap.BusinessCard {
	if s.cfg.OwnPool != "" {
		return &asap.BusinessCard{PoolHandle: s.cfg.OwnPool, PEs: s.cfg.OwnPEs}
	}
	kind := asap.ParamTCPTransport
	if conn.Kind() == transport.KindSCTP {
		kind = asap.ParamSCTPTransport
	}
	local := conn.LocalAddr().Addrs
	if kind != asap.ParamSCTPTransport && len(local) > 1 {
		local = local[:1]
	}
	self := asap.PoolElement{
		User:   asap.Transport{Kind: kind, Port: conn.LocalAddr().Port, Use: asap.UseDataAndControl, Addrs: local},
		Policy: asap.Policy{Type: asap.PolicyRoundRobin},
	}
	return &asap.BusinessCard{PoolHandle: s.h, PEs: []asap.PoolElement{self}}
}

// install makes conn the session's connection and starts its reader.
func (s *Session) install(conn transport.Conn, pe asap.PoolElement) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return ErrClosed
	}
	s.conn, s.pe, s.since = conn, pe, time.Now()
	s.cardOnce = new(sync.Once)
	s.gen++
	gen := s.gen
	s.wg.Add(1)
	s.mu.Unlock()
	go s.read(conn, gen)
	return nil
}

// read delivers the data of one connection and handles its ASAP control
// messages; when the connection fails it fails the session over.
func (s *Session) read(conn transport.Conn, gen uint64) {
	defer s.wg.Done()
	for {
		ppid, b, err := conn.Recv(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FailoverTimeout)
			if ferr := s.failover(ctx, gen, err); ferr != nil {
				s.log.Warn("failover failed; the session is broken", "error", ferr)
			}
			cancel()
			return
		}
		if ppid == transport.PPIDASAP {
			s.control(b)
			continue
		}
		select {
		case s.in <- inMsg{ppid: ppid, data: b}:
		case <-s.ctx.Done():
			return
		}
	}
}

// control handles ASAP messages from the PE: COOKIE, BUSINESS_CARD, ERROR.
// The decoded message is the session's own (Unpack copies out of b).
func (s *Session) control(b []byte) {
	m, _, err := asap.Unpack(b, nil)
	if err != nil {
		s.log.Debug("undecodable ASAP message from the PE", "error", err)
		return
	}
	switch m := m.(type) {
	case *asap.Cookie:
		s.mu.Lock()
		s.cookie = m.Cookie
		s.mu.Unlock()
	case *asap.BusinessCard:
		if m.PoolHandle != s.h {
			s.log.Debug("ignoring a business card of another pool", "card_pool", string(m.PoolHandle))
			return
		}
		s.mu.Lock()
		s.card = m.PEs
		s.mu.Unlock()
		s.log.Debug("business card received", "pes", len(m.PEs))
	case *asap.Error:
		s.log.Warn("PE reported an error", "causes", m.Error.Error())
	default:
		s.log.Debug("ignoring an ASAP message a PU does not expect from a PE", "type", m.Type())
	}
}

// Close closes the session and waits for its goroutines. Idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conn := s.conn
	if s.err == nil {
		s.err = ErrClosed
		close(s.broken)
	}
	s.mu.Unlock()
	s.cancel()
	if conn != nil {
		conn.Close()
	}
	s.wg.Wait()
	s.u.mu.Lock()
	delete(s.u.sessions, s)
	s.u.mu.Unlock()
	return nil
}
