// Package tlsutil holds a registrar's TLS material (its certificate and
// key, and the certificate authority of its cluster) and builds the
// crypto/tls configurations of every port from it: the admin API, the raft
// port (raft and forwarded writes) and the TLS listeners of ASAP and ENRP,
// and the clients that dial them.
//
// The material is loaded once and can be loaded again while the registrar
// serves (SIGHUP): every configuration reads the current material at each
// handshake (tls.Config.GetConfigForClient on the server side, a fresh
// configuration per dial on the client side), so new handshakes see new
// files and sessions already established go on.
//
// Two kinds of peers are told apart by their certificates' extended key
// usage: a registrar's certificate is valid for both server and client
// authentication (it serves and it dials); a client certificate (the CLI's,
// a PE's or PU's) for client authentication only. The raft port and ENRP
// peering accept only registrar certificates, so a client certificate from
// the same CA cannot vote, replicate or forward writes.
//
// Registrar-to-registrar connections check the chain against the cluster's
// CA, not a host name (raft addresses are IP addresses that change): any
// registrar certificate of the CA is a member. Use a CA of its own for each
// cluster. Clients of the admin API and of ASAP check the host name as
// usual.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
)

// Files names the PEM files of the material.
type Files struct {
	// Cert and Key are this side's certificate (chain) and private key.
	// Both or neither: a client without them presents no certificate.
	Cert, Key string
	// CA is the certificate authority (one or more PEM certificates) that
	// peers' certificates must chain to.
	CA string
}

// IsZero reports whether no file is named.
func (f Files) IsZero() bool { return f.Cert == "" && f.Key == "" && f.CA == "" }

// Material is one load of the files.
type Material struct {
	files Files
	cert  *tls.Certificate // nil: none
	leaf  *x509.Certificate
	pool  *x509.CertPool // nil: the system's roots

	// server configurations, built once per load so that session
	// ticket keys and caches are shared by the handshakes of one load.
	servers [3]atomic.Pointer[tls.Config]
}

// Load reads the files. A certificate that does not match its key, a CA
// file without a certificate, or a missing file is an error naming the
// file.
func Load(f Files) (*Material, error) {
	m := &Material{files: f}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("tls: a certificate needs its key and a key its certificate (tls_cert_file and tls_key_file)")
	}
	if f.Cert != "" {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s with key %s: %w", f.Cert, f.Key, err)
		}
		m.cert = &c
		m.leaf = c.Leaf
		if m.leaf == nil {
			if m.leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls: certificate %s: %w", f.Cert, err)
			}
		}
	}
	if f.CA != "" {
		b, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("tls: CA file: %w", err)
		}
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", f.CA)
		}
	}
	return m, nil
}

// HasCert reports whether the material has a certificate of its own.
func (m *Material) HasCert() bool { return m.cert != nil }

// HasCA reports whether the material names a CA.
func (m *Material) HasCA() bool { return m.pool != nil }

// Leaf is the material's own certificate (nil: none).
func (m *Material) Leaf() *x509.Certificate { return m.leaf }

// Store holds the current material; Reload replaces it. Its methods are
// safe for concurrent use.
type Store struct {
	cur atomic.Pointer[Material]
	// noVerifyOut: PeerClientConfig does not check the server.
	noVerifyOut atomic.Bool
}

// SetVerifyOutgoing sets whether PeerClientConfig checks the server's
// certificate (default true; false is a migration aid: the connection is
// still TLS and this side still presents its certificate).
func (s *Store) SetVerifyOutgoing(v bool) { s.noVerifyOut.Store(!v) }

// NewStore loads the files.
func NewStore(f Files) (*Store, error) {
	m, err := Load(f)
	if err != nil {
		return nil, err
	}
	s := &Store{}
	s.cur.Store(m)
	return s, nil
}

// Files are the files of the current material.
func (s *Store) Files() Files { return s.Current().files }

// Current is the material in use.
func (s *Store) Current() *Material { return s.cur.Load() }

// Reload reads f (the same files again, or others); on an error the old
// material stays in use.
func (s *Store) Reload(f Files) error {
	m, err := Load(f)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// ClientAuth says what a server asks of its clients.
type ClientAuth int

// The client authentication modes.
const (
	// ClientOptional verifies a client certificate when one is given.
	ClientOptional ClientAuth = iota
	// ClientRequired refuses clients without a certificate of the CA.
	ClientRequired
	// ClientRegistrar refuses clients without a registrar certificate of
	// the CA (server and client authentication): the raft port and ENRP.
	ClientRegistrar
)

// ServerConfig is the configuration of a listener: each handshake uses
// the material current at that moment.
func (s *Store) ServerConfig(auth ClientAuth) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.Current()
			if m.cert == nil {
				return nil, errors.New("tls: this side has no certificate")
			}
			return m.serverConfig(auth), nil
		},
	}
}

func (m *Material) serverConfig(auth ClientAuth) *tls.Config {
	if c := m.servers[auth].Load(); c != nil {
		return c
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert}, ClientCAs: m.pool}
	switch auth {
	case ClientOptional:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientRequired:
		c.ClientAuth = tls.RequireAndVerifyClientCert
	case ClientRegistrar:
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return requireRegistrar(cs.PeerCertificates)
		}
	}
	m.servers[auth].CompareAndSwap(nil, c)
	return m.servers[auth].Load()
}

// requireRegistrar accepts a verified peer certificate valid for both
// server and client authentication.
func requireRegistrar(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("tls: the peer sent no certificate")
	}
	u := chain[0].ExtKeyUsage
	if !slices.Contains(u, x509.ExtKeyUsageServerAuth) || !slices.Contains(u, x509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("tls: certificate %q is not a registrar's (it needs both server and client authentication)", chain[0].Subject.CommonName)
	}
	return nil
}

// PeerClientConfig is the configuration of one dial to another registrar
// (raft, forwarded writes, ENRP): this registrar's certificate, and the
// peer's checked against the CA (not its host name) and required to be a
// registrar certificate. Call it for each dial: it takes the current
// material.
func (s *Store) PeerClientConfig() *tls.Config {
	m := s.Current()
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified below, against the CA and without a host
		// name; InsecureSkipVerify only turns off the host name check of
		// the default verification.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if s.noVerifyOut.Load() {
				return nil
			}
			if err := verifyChain(cs.PeerCertificates, m.pool, x509.ExtKeyUsageServerAuth, ""); err != nil {
				return err
			}
			return requireRegistrar(cs.PeerCertificates)
		},
	}
	if m.cert != nil {
		c.Certificates = []tls.Certificate{*m.cert}
	}
	return c
}

// ClientConfig is the configuration of one dial to a server that is not
// necessarily a registrar (the admin API, ASAP over TLS): the peer's
// certificate is checked against the CA (the system's roots without one)
// and serverName (a host name or an IP address); this side's certificate
// is presented when there is one.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	m := s.Current()
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: m.pool, ServerName: serverName}
	if m.cert != nil {
		c.Certificates = []tls.Certificate{*m.cert}
	}
	return c
}

func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, name string) error {
	if len(chain) == 0 {
		return errors.New("tls: the peer sent no certificate")
	}
	if roots == nil {
		return errors.New("tls: no CA to verify the peer with (tls_ca_file)")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: name})
	if err != nil {
		return fmt.Errorf("tls: peer certificate %q: %w", chain[0].Subject.CommonName, err)
	}
	return nil
}
