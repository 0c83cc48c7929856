package pu

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
	"github.com/rserpool-go/registrar/transport"
)

// Defaults (RSPLIB's where it has one).
const (
	// DefaultCacheTime is how long a resolution is reused before the
	// registrar is asked again (the stale-cache time).
	DefaultCacheTime = 5 * time.Second
	// DefaultRequestTimeout is how long a registrar has to answer.
	DefaultRequestTimeout = regclient.DefaultRequestTimeout
	// DefaultRequestRetries is how often a request is repeated before
	// the PU hunts for another registrar.
	DefaultRequestRetries = regclient.DefaultRequestRetries
	// DefaultAnnounceTimeout is how long a registrar heard in an announce
	// stays usable (T7-ENRPoutdate).
	DefaultAnnounceTimeout = regclient.DefaultAnnounceTimeout
	// DefaultDialTimeout bounds one connection attempt to a registrar or
	// a PE.
	DefaultDialTimeout = regclient.DefaultDialTimeout
	// DefaultFailoverTimeout bounds one automatic failover.
	DefaultFailoverTimeout = 30 * time.Second
)

// RegistrarConfig is how a PE or a PU finds and talks to registrars, the
// same type as pe.RegistrarConfig, where each field is described.
type RegistrarConfig = regclient.Settings

// Config configures a User. Start from DefaultConfig.
type Config struct {
	// RegistrarConfig is how the user finds and talks to registrars:
	// Registrars, Announce, AnnounceInterface, AnnounceTimeout,
	// RequestTimeout, RequestRetries, DialTimeout and Network, set as
	// fields of Config (cfg.Registrars = ...). See RegistrarConfig.
	RegistrarConfig

	// CacheTime is how long the PEs of a resolution are reused before the
	// registrar is asked again (the stale-cache time); while cached,
	// successive selections rotate through them. A PE reported
	// unreachable leaves the cache at once. 0 disables the cache.
	// Default 5 s.
	CacheTime time.Duration

	// Items is how many PEs a resolution asks for (the Handle Resolution
	// Option); 0 leaves it to the registrar (RSPLIB's and ours: 3), and
	// asap.ItemsAll asks for all. Default 0.
	Items uint32

	// Logger; nil means silent.
	Logger hclog.Logger
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		RegistrarConfig: regclient.DefaultSettings(),
		CacheTime:       DefaultCacheTime,
	}
}

// Validate reports every invalid field, joined with errors.Join; each
// error names the field and says what is allowed.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("pu config: "+format, a...)) }
	c.RegistrarConfig.Validate("PU", bad)
	if c.CacheTime < 0 {
		bad("CacheTime %v is negative (0 disables the cache)", c.CacheTime)
	}
	return errors.Join(errs...)
}

// SessionConfig configures a Session. Start from DefaultSessionConfig.
type SessionConfig struct {
	// PPID is the payload protocol identifier Send uses (any but 11,
	// ASAP's). Default 0 (unspecified).
	PPID uint32

	// DialTimeout bounds one connection attempt to a PE. Default 5 s.
	DialTimeout time.Duration

	// FailoverTimeout bounds an automatic failover (the PE failed while
	// the session was receiving). Default 30 s.
	FailoverTimeout time.Duration

	// ReportUnreachable tells the registrar about a PE that failed
	// (ASAP_ENDPOINT_UNREACHABLE), so that it removes the PE after a few
	// reports. Default true.
	ReportUnreachable bool

	// MaxMessageSize is the largest message, in bytes (4 to 65535; over
	// TCP at most 65527 fit in a mux data frame). Default 65535.
	MaxMessageSize int

	// OnFailover is called after each failover, on the goroutine that
	// detected the failure; it must not block. Default nil.
	OnFailover func(Failover)

	// NoBusinessCard stops the session from telling each PE it connects
	// to who the pool user is (ASAP_BUSINESS_CARD, RFC 5352 section
	// 2.2.13, sent on the data channel before the first message of the
	// application, at the start of the session and after every failover,
	// so after the cookie echo). Default false: it is sent.
	NoBusinessCard bool

	// OwnPool is the pool the application is itself a PE of (a pool user
	// that is also a pool element): its business card then names that
	// pool and OwnPEs, the PEs of it to reach the pool user's side by (in
	// order; the application's own PE parameter, pe.Element.PoolElement,
	// first). Without it the card names the session's pool and one Pool
	// Element parameter with the pool user's own transport: the session's
	// local addresses and port, PE identifier 0 (none). Default "".
	OwnPool asap.PoolHandle
	OwnPEs  []asap.PoolElement
}

// DefaultSessionConfig returns the defaults documented on each field.
func DefaultSessionConfig() SessionConfig {
	return SessionConfig{
		DialTimeout:       DefaultDialTimeout,
		FailoverTimeout:   DefaultFailoverTimeout,
		ReportUnreachable: true,
		MaxMessageSize:    transport.MaxFrameSize,
	}
}

// Validate reports every invalid field.
func (c SessionConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("pu session config: "+format, a...)) }
	if c.PPID == transport.PPIDASAP {
		bad("PPID 11 is ASAP's; choose the application's")
	}
	if c.DialTimeout <= 0 {
		bad("DialTimeout %v must be positive", c.DialTimeout)
	}
	if c.FailoverTimeout <= 0 {
		bad("FailoverTimeout %v must be positive", c.FailoverTimeout)
	}
	if c.MaxMessageSize < 4 || c.MaxMessageSize > transport.MaxFrameSize {
		bad("MaxMessageSize %d out of range [4, %d]", c.MaxMessageSize, transport.MaxFrameSize)
	}
	if c.OwnPool == "" && len(c.OwnPEs) > 0 {
		bad("OwnPEs without OwnPool: name the pool they belong to")
	}
	if c.OwnPool != "" {
		if _, err := asap.Pack(&asap.BusinessCard{PoolHandle: c.OwnPool, PEs: c.OwnPEs}); err != nil {
			bad("OwnPool/OwnPEs do not make a business card: %v", err)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) clientConfig(log hclog.Logger) regclient.Config {
	return regclient.Config{Settings: c.RegistrarConfig, Logger: log,
		Handler: func(c *regclient.Conn, m asap.Message) {
			if m.Type() != asap.TypeError {
				log.Debug("ignoring a message a PU does not handle", "registrar", c.Label(), "type", m.Type())
			}
		},
	}
}
