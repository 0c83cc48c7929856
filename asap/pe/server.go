package pe

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
	"github.com/rserpool-go/registrar/transport"
)

// ServerConfig configures a Server. Start from DefaultServerConfig.
type ServerConfig struct {
	// MaxMessageSize is the largest application message, in bytes (4 to
	// 65535; over TCP at most 65527 fit in a mux data frame). Default
	// 65535.
	MaxMessageSize int

	// Network opens sockets; nil means transport.OSNetwork().
	Network transport.Network

	// Logger; nil means silent.
	Logger hclog.Logger
}

// DefaultServerConfig returns the defaults documented on each field.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{MaxMessageSize: transport.MaxFrameSize}
}

// Validate reports every invalid field.
func (c ServerConfig) Validate() error {
	if c.MaxMessageSize < 4 || c.MaxMessageSize > transport.MaxFrameSize {
		return fmt.Errorf("pe server config: MaxMessageSize %d out of range [4, %d]", c.MaxMessageSize, transport.MaxFrameSize)
	}
	return nil
}

// Server is a PE's service endpoint: pool users connect to it and
// exchange application data and ASAP control messages (cookies, business
// cards) on one connection, "data plus control" (RFC 5352 section 3.7):
// over SCTP told apart by the PPID, over TCP by the transport's mux
// framing. Safe for concurrent use.
type Server struct {
	ln  transport.Listener
	log hclog.Logger

	mu       sync.Mutex
	sessions map[*Session]struct{}
	closed   bool
}

// Listen opens a service endpoint on an address spec:
// "tcp:127.0.0.1:0", "sctp:10.0.0.1,10.0.0.2:7000", or without prefix for
// SCTP and TCP on one port (TCP only where the kernel has no SCTP).
func Listen(ctx context.Context, spec string, cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	network := cfg.Network
	if network == nil {
		network = transport.OSNetwork()
	}
	ln, err := network.Listen(ctx, spec, regclient.DataConfig(cfg.MaxMessageSize, log))
	if err != nil {
		return nil, fmt.Errorf("pe: listen %s: %w", spec, err)
	}
	return &Server{ln: ln, log: log, sessions: map[*Session]struct{}{}}, nil
}

// Addrs are the bound endpoints (with the real ports).
func (s *Server) Addrs() []transport.Endpoint { return s.ln.Addrs() }

// Transport is the user transport parameter to register (Config.User):
// SCTP if the server listens on SCTP, else TCP; transport use data plus
// control; wildcard addresses stay unspecified and the Element replaces
// them by the address the registrar sees.
func (s *Server) Transport() asap.Transport {
	return transportOf(s.ln.Addrs(), asap.UseDataAndControl)
}

// Accept waits for the next pool user and returns its session.
func (s *Server) Accept(ctx context.Context) (*Session, error) {
	c, err := s.ln.Accept(ctx)
	if err != nil {
		if errors.Is(err, transport.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, err
	}
	ss := &Session{srv: s, c: c, log: s.log.With("pu", c.RemoteAddr().String())}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	return ss, nil
}

// Close stops accepting and closes the sessions still open. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	open := make([]*Session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, ss := range open {
		ss.Close()
	}
	return err
}

// MessageKind tells what a Session's Recv returned.
type MessageKind uint8

// Message kinds. Only append.
const (
	// KindData is application data.
	KindData MessageKind = iota + 1
	// KindCookieEcho is ASAP_COOKIE_ECHO: the pool user failed over to
	// this PE and hands back the last cookie it got from the previous
	// one. It comes before any data of the session.
	KindCookieEcho
	// KindBusinessCard is ASAP_BUSINESS_CARD: the pool user's pool and
	// PEs.
	KindBusinessCard
)

func (k MessageKind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindCookieEcho:
		return "cookie-echo"
	case KindBusinessCard:
		return "business-card"
	}
	return fmt.Sprintf("MessageKind(%d)", uint8(k))
}

// Message is what a Session receives.
type Message struct {
	Kind MessageKind
	// PPID is the payload protocol identifier of application data.
	PPID uint32
	// Data is the application data, or the echoed cookie.
	Data []byte
	// BusinessCard is set for KindBusinessCard.
	BusinessCard *asap.BusinessCard
}

// Session is one pool user's connection to a Server. Recv is for one
// goroutine; the Send methods and Close are safe for concurrent use.
type Session struct {
	srv  *Server
	c    transport.Conn
	log  hclog.Logger
	once sync.Once
}

// RemoteAddr is the pool user's endpoint.
func (s *Session) RemoteAddr() transport.Endpoint { return s.c.RemoteAddr() }

// Recv returns the next application message, echoed cookie or business
// card. ASAP errors are logged and skipped. io.EOF means the pool user
// closed the session.
func (s *Session) Recv(ctx context.Context) (Message, error) {
	for {
		ppid, b, err := s.c.Recv(ctx)
		if err != nil {
			return Message{}, err
		}
		if ppid != transport.PPIDASAP {
			return Message{Kind: KindData, PPID: ppid, Data: b}, nil
		}
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			s.log.Debug("undecodable ASAP message from a pool user", "error", err)
			if cause, ok := asap.CauseOf(err); ok {
				_ = s.sendASAP(ctx, &asap.Error{Error: asap.OperationError{Causes: []asap.Cause{cause}}})
			}
			continue
		}
		switch m := m.(type) {
		case *asap.CookieEcho:
			return Message{Kind: KindCookieEcho, PPID: transport.PPIDASAP, Data: m.Cookie}, nil
		case *asap.BusinessCard:
			return Message{Kind: KindBusinessCard, PPID: transport.PPIDASAP, BusinessCard: m}, nil
		case *asap.Error:
			s.log.Warn("pool user reported an error", "causes", m.Error.Error())
		default:
			s.log.Debug("ignoring an ASAP message a PE does not expect from a pool user", "type", m.Type())
		}
	}
}

// Send sends application data with a payload protocol identifier other
// than 11 (ASAP's).
func (s *Session) Send(ctx context.Context, ppid uint32, data []byte) error {
	if ppid == transport.PPIDASAP {
		return errors.New("pe: PPID 11 is ASAP's; send cookies and business cards with SendCookie and SendBusinessCard")
	}
	return s.c.Send(ctx, ppid, data)
}

// SendCookie sends ASAP_COOKIE: state the pool user keeps and echoes to
// the PE it fails over to. Keep its length a multiple of 4 bytes (RSPLIB's
// parser fails on other lengths).
func (s *Session) SendCookie(ctx context.Context, cookie []byte) error {
	return s.sendASAP(ctx, &asap.Cookie{Cookie: cookie})
}

// SendBusinessCard sends ASAP_BUSINESS_CARD: the pool and the PEs the
// pool user should fail over to, in order of preference.
func (s *Session) SendBusinessCard(ctx context.Context, card *asap.BusinessCard) error {
	return s.sendASAP(ctx, card)
}

func (s *Session) sendASAP(ctx context.Context, m asap.Message) error {
	b, err := asap.Pack(m)
	if err != nil {
		return err
	}
	return s.c.Send(ctx, transport.PPIDASAP, b)
}

// Close closes the session. Idempotent.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		err = s.c.Close()
		s.srv.mu.Lock()
		delete(s.srv.sessions, s)
		s.srv.mu.Unlock()
	})
	return err
}
