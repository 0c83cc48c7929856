package regclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// Defaults of the registrar client, RSPLIB's where it has one.
const (
	DefaultAnnounceTimeout = 5 * time.Second // T7-ENRPoutdate
	DefaultRequestTimeout  = 3 * time.Second // RSPLIB's request timeout
	DefaultRequestRetries  = 1               // RSPLIB's request retries before a new hunt
	DefaultDialTimeout     = 5 * time.Second
)

// Settings is how a PE or a PU finds and talks to registrars: the fields
// pe.Config and pu.Config share. Both embed it under its exported name
// RegistrarConfig (pe.RegistrarConfig, pu.RegistrarConfig: aliases of
// this type), so its fields are set as theirs: cfg.Registrars. The
// meaning and default of each field are documented on pe.RegistrarConfig,
// which godoc shows (it cannot show this internal type).
type Settings struct {
	Registrars        []string          // ASAP addresses, tried in order
	Announce          string            // multicast group:port, "off", or "" (see announceGroup)
	AnnounceInterface string            // "" lets the kernel choose by route
	AnnounceTimeout   time.Duration     // T7: how long an announced registrar stays a candidate
	RequestTimeout    time.Duration     // wait for one answer
	RequestRetries    int               // resends on one registrar before a hunt
	DialTimeout       time.Duration     // one connection attempt
	Network           transport.Network // nil: transport.OSNetwork()
	TLS               *tls.Config       // for tls: registrar addresses
}

// DefaultSettings returns the defaults documented on each field.
func DefaultSettings() Settings {
	return Settings{
		AnnounceTimeout: DefaultAnnounceTimeout,
		RequestTimeout:  DefaultRequestTimeout,
		RequestRetries:  DefaultRequestRetries,
		DialTimeout:     DefaultDialTimeout,
	}
}

// Config configures a Client: the shared settings, plus what the pe and
// pu packages set themselves.
type Config struct {
	Settings
	// Logger; nil means silent.
	Logger hclog.Logger
	// Handler receives the messages that are not responses to a pending
	// request (ENDPOINT_KEEP_ALIVE, ASAP_ERROR, ...), with the connection
	// they came on. It runs on that connection's reader goroutine and must
	// not block for long. nil drops them.
	Handler func(c *Conn, m asap.Message)
}

// ControlConfig is the transport configuration of an ASAP connection with
// a registrar: dialed by the Client, or accepted on a PE's ASAP endpoint.
func ControlConfig(log hclog.Logger) transport.Config {
	c := transport.DefaultConfig()
	c.PPID = transport.PPIDASAP
	c.Logger = log
	return c
}

// DataConfig is the transport configuration of a PE's data channel, "data
// plus control" (RFC 5352 section 3.7): ASAP messages raw, application
// data in mux frames on TCP, both by PPID on SCTP.
func DataConfig(maxMessageSize int, log hclog.Logger) transport.Config {
	c := ControlConfig(log)
	c.Mux = true
	c.MaxMessageSize = maxMessageSize
	return c
}

// announceGroup resolves the announce default.
func (c *Settings) announceGroup() string {
	if c.Announce != "" {
		return c.Announce
	}
	if len(c.Registrars) == 0 {
		return transport.DefaultASAPAnnounce
	}
	return "off"
}

// Validate reports each invalid field through bad, naming it as the pe and
// pu configurations name theirs (they promote the fields); role ("PE",
// "PU") is who would be left without a registrar.
func (c *Settings) Validate(role string, bad func(format string, a ...any)) {
	for i, r := range c.Registrars {
		if _, err := transport.ParseSpec(r); err != nil {
			bad("Registrars[%d]: %v", i, err)
		}
	}
	if c.Announce != "" {
		if _, err := transport.ParseMulticastSpec(c.Announce); err != nil {
			bad("Announce: %v", err)
		}
	}
	if c.Announce == "off" && len(c.Registrars) == 0 {
		bad("Registrars is empty and Announce is off: the %s cannot find a registrar", role)
	}
	if c.AnnounceTimeout <= 0 {
		bad("AnnounceTimeout %v must be positive", c.AnnounceTimeout)
	}
	if c.RequestTimeout <= 0 {
		bad("RequestTimeout %v must be positive", c.RequestTimeout)
	}
	if c.RequestRetries < 0 {
		bad("RequestRetries %d is negative", c.RequestRetries)
	}
	if c.DialTimeout <= 0 {
		bad("DialTimeout %v must be positive", c.DialTimeout)
	}
}

func (c *Config) check() error {
	var errs []error
	c.Validate("client", func(format string, a ...any) { errs = append(errs, fmt.Errorf("registrar client: "+format, a...)) })
	return errors.Join(errs...)
}
