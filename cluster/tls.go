package cluster

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// Mutual TLS on the raft port. The listener accepts only registrar
// certificates of the cluster's CA; a connection that does not complete
// the handshake never reaches raft or the forwarded-write server (its
// first byte is read through TLS). Dials present this registrar's
// certificate and check the peer's.

// listenRaft listens on bind, with TLS when tlsStore is set.
func listenRaft(bind string, tlsStore *tlsutil.Store) (net.Listener, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil || tlsStore == nil {
		return ln, err
	}
	return tls.NewListener(ln, tlsStore.ServerConfig(tlsutil.ClientRegistrar)), nil
}

// dialRaft connects to a raft port, with TLS (the handshake done within
// timeout) when tlsStore is set.
func dialRaft(addr string, timeout time.Duration, tlsStore *tlsutil.Store) (net.Conn, error) {
	if tlsStore == nil {
		return net.DialTimeout("tcp", addr, timeout)
	}
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", addr, tlsStore.PeerClientConfig())
}

// refused logs a connection to the raft port that ended before its first
// byte: a failed TLS handshake (a stranger, a wrong or expired
// certificate) is a warning; a plain close (a probe) says nothing.
func (m *muxLayer) refused(c net.Conn, err error) {
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok || errors.Is(err, io.EOF) || tc.ConnectionState().HandshakeComplete {
		return
	}
	m.log.Warn("raft port: connection refused: TLS handshake failed", "remote", c.RemoteAddr(), "error", err)
}

// probeRaft checks that a registrar at addr completes the raft port's
// TLS handshake (it holds a registrar certificate of the CA) before the
// leader makes it a voter: gossip alone must not be a way into raft's
// configuration. Without TLS it only checks that the port answers.
func probeRaft(addr string, tlsStore *tlsutil.Store) error {
	if tlsStore == nil {
		return nil
	}
	c, err := dialRaft(addr, 5*time.Second, tlsStore)
	if err != nil {
		return err
	}
	return c.Close()
}
