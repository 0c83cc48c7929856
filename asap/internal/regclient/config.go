package regclient

import (
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

// Config configures a Client. The packages pe and pu fill it from their own
// configurations and validate it with Validate, which names each field.
type Config struct {
	// Registrars are ASAP address specs ([tcp:|sctp:]host:port), tried in
	// order.
	Registrars []string
	// Announce is the ASAP_SERVER_ANNOUNCE multicast group:port, "off",
	// or "" for the default: transport.DefaultASAPAnnounce when Registrars
	// is empty, off otherwise.
	Announce string
	// AnnounceInterface is the interface to join the group on ("" lets
	// the kernel choose by route).
	AnnounceInterface string
	// AnnounceTimeout is how long a registrar learnt from announces stays
	// a candidate after its last announce (T7).
	AnnounceTimeout time.Duration
	// RequestTimeout bounds the wait for one response.
	RequestTimeout time.Duration
	// RequestRetries is how often a request is sent again on the same
	// connection before the client hunts for another registrar.
	RequestRetries int
	// DialTimeout bounds one connection attempt to a registrar.
	DialTimeout time.Duration
	// Network opens connections; nil means transport.OSNetwork().
	Network transport.Network
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
func (c *Config) announceGroup() string {
	if c.Announce != "" {
		return c.Announce
	}
	if len(c.Registrars) == 0 {
		return transport.DefaultASAPAnnounce
	}
	return "off"
}

// Validate reports each invalid field through bad, naming it as the pe and
// pu configurations name theirs; role ("PE", "PU") is who would be left
// without a registrar.
func (c *Config) Validate(role string, bad func(format string, a ...any)) {
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
