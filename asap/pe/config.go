package pe

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
	"github.com/rserpool-go/registrar/transport"
)

// Defaults (RSPLIB's where it has one).
const (
	// DefaultReregInterval is the re-registration period (rspserver's).
	DefaultReregInterval = 30 * time.Second
	// DefaultRequestTimeout is how long a registrar has to answer.
	DefaultRequestTimeout = regclient.DefaultRequestTimeout
	// DefaultRequestRetries is how often a request is repeated before the
	// PE hunts for another registrar.
	DefaultRequestRetries = regclient.DefaultRequestRetries
	// DefaultAnnounceTimeout is how long a registrar heard in an announce
	// stays usable (T7-ENRPoutdate).
	DefaultAnnounceTimeout = regclient.DefaultAnnounceTimeout
	// DefaultDialTimeout bounds one connection attempt to a registrar.
	DefaultDialTimeout = regclient.DefaultDialTimeout
	// DefaultASAP is the PE's own ASAP endpoint: every local address, a
	// free port, SCTP and TCP where the kernel has SCTP.
	DefaultASAP = ":0"
)

// RegistrarConfig is how a PE or a PU finds and talks to registrars, the
// same type in pe and pu (pu.RegistrarConfig): each field's meaning and
// default,
//
//   - Registrars: the registrars' ASAP addresses
//     ([tcp:|tls:|sctp:]host:port), tried in order. Default none.
//   - Announce: the ASAP_SERVER_ANNOUNCE multicast group:port to learn
//     registrars from, or "off". "" means 239.0.0.50:3863 when Registrars
//     is empty and off otherwise. Default "".
//   - AnnounceInterface: the interface to hear announces on ("" lets the
//     kernel choose by route). Default "".
//   - AnnounceTimeout: how long a registrar learnt from announces stays a
//     candidate after its last announce (T7). Default 5 s.
//   - RequestTimeout: the wait for one registrar answer. Default 3 s.
//   - RequestRetries: how often a request is sent again to the same
//     registrar before the client hunts for another one. Default 1.
//   - DialTimeout: one connection attempt to a registrar. Default 5 s.
//   - Network: opens sockets; nil means transport.OSNetwork() (tests use
//     transport.NewMemNetwork()).
//   - TLS: the TLS client configuration of tls: registrar addresses (ASAP
//     over TLS, IANA port 3864: the registrar's asap_tls listener); its
//     RootCAs check the registrar, its Certificates are presented when
//     the registrar has verify_incoming. Default nil.
type RegistrarConfig = regclient.Settings

// Config configures an Element. Start from DefaultConfig and set at least
// PoolHandle and User.
type Config struct {
	// PoolHandle names the pool to join. Required; at most 32 bytes
	// (RSPLIB's limit).
	PoolHandle asap.PoolHandle

	// ID is the PE identifier. 0 picks a random non-zero one.
	ID uint32

	// User is where pool users reach the service: the user transport
	// parameter of the registration. Kind is asap.ParamTCPTransport or
	// asap.ParamSCTPTransport; Port must not be 0. Unspecified addresses
	// (0.0.0.0, ::) or none at all stand for "the address the registrar
	// sees this host by". Server.Transport returns the right value for a
	// Server. Use should be asap.UseDataAndControl (cookies and business
	// cards travel on the data connection). Required.
	User asap.Transport

	// Policy is the member selection policy and its values (weight, load,
	// priority, ...). All PEs of a pool must use the same policy type.
	// Default round robin.
	Policy asap.Policy

	// ReregInterval is how often the registration is renewed. Default 30 s.
	ReregInterval time.Duration

	// Lifetime is the registration life the registrar keeps the PE for
	// without a renewal. 0 means 3 × ReregInterval (RSPLIB's rule).
	// Default 0.
	Lifetime time.Duration

	// ASAP is the PE's own ASAP endpoint, where a registrar that took the
	// PE over reaches it: [tcp:|sctp:]host:port, no prefix for SCTP and
	// TCP. Wildcard hosts are advertised as the address the registrar sees.
	// Default ":0".
	ASAP string

	// RegistrarConfig is how the element finds and talks to registrars:
	// Registrars, Announce, AnnounceInterface, AnnounceTimeout,
	// RequestTimeout, RequestRetries, DialTimeout and Network, set as
	// fields of Config (cfg.Registrars = ...). See RegistrarConfig.
	RegistrarConfig

	// Logger receives the element's events ("pe registered", home changes,
	// failed renewals); nil means silent.
	Logger hclog.Logger
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Policy:          asap.Policy{Type: asap.PolicyRoundRobin},
		ReregInterval:   DefaultReregInterval,
		ASAP:            DefaultASAP,
		RegistrarConfig: regclient.DefaultSettings(),
	}
}

// lifetime is the registration life in effect.
func (c *Config) lifetime() time.Duration {
	if c.Lifetime == 0 {
		return 3 * c.ReregInterval
	}
	return c.Lifetime
}

// Validate reports every invalid field, joined with errors.Join; each
// error names the field and says what is allowed.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("pe config: "+format, a...)) }
	switch {
	case c.PoolHandle == "":
		bad("PoolHandle is empty: name the pool to join")
	case len(c.PoolHandle) > asap.DefaultMaxPoolHandle:
		bad("PoolHandle is %d bytes, more than %d (registrars refuse longer handles)", len(c.PoolHandle), asap.DefaultMaxPoolHandle)
	}
	switch c.User.Kind {
	case asap.ParamTCPTransport:
		if len(c.User.Addrs) > 1 {
			bad("User.Addrs lists %d addresses; a TCP transport has exactly one", len(c.User.Addrs))
		}
	case asap.ParamSCTPTransport:
	case 0:
		bad("User is not set: give the service's transport (Server.Transport() for a pe.Server)")
	default:
		bad("User.Kind %v is not supported: use asap.ParamTCPTransport or asap.ParamSCTPTransport", c.User.Kind)
	}
	if c.User.Kind != 0 && c.User.Port == 0 {
		bad("User.Port is 0: give the port the service listens on")
	}
	for i, a := range c.User.Addrs {
		if !a.IsValid() {
			bad("User.Addrs[%d] is not a valid IP address", i)
		}
	}
	if c.User.Use != asap.UseData && c.User.Use != asap.UseDataAndControl {
		bad("User.Use %d is neither asap.UseData nor asap.UseDataAndControl", c.User.Use)
	}
	if !c.Policy.Type.Known() {
		bad("Policy.Type %v is not a known member selection policy", c.Policy.Type)
	}
	if c.ReregInterval < 10*time.Millisecond {
		bad("ReregInterval %v is below 10ms", c.ReregInterval)
	}
	if c.Lifetime < 0 {
		bad("Lifetime %v is negative (0 means 3 x ReregInterval)", c.Lifetime)
	} else if lt := c.lifetime(); c.ReregInterval >= 10*time.Millisecond && lt < c.ReregInterval {
		bad("Lifetime %v is shorter than ReregInterval %v: the registration would lapse between renewals", lt, c.ReregInterval)
	} else if lt/time.Millisecond > math.MaxUint32 {
		bad("Lifetime %v exceeds the 32-bit millisecond field (about 49 days)", lt)
	}
	if _, err := transport.ParseSpec(c.ASAP); err != nil {
		bad("ASAP: %v", err)
	}
	c.RegistrarConfig.Validate("PE", bad)
	return errors.Join(errs...)
}

func (c *Config) clientConfig(log hclog.Logger, handler func(*regclient.Conn, asap.Message)) regclient.Config {
	return regclient.Config{Settings: c.RegistrarConfig, Logger: log, Handler: handler}
}
