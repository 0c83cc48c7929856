package registrar

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/transport"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// The security settings: TLS, admin API tokens, and the safe defaults
// (no non-loopback admin API, raft or gossip without protection unless
// Insecure says so). See docs/security.md.

func (c *Config) bindSecurityFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ASAPTLS, "asap-tls", c.ASAPTLS, "ASAP over TLS listener, host:port (IANA asap-tls 3864), or off")
	fs.StringVar(&c.ENRPTLS, "enrp-tls", c.ENRPTLS, "ENRP over TLS listener for registrar peers, host:port (IANA enrp-tls 9902), or off")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "this registrar's TLS certificate (PEM); with -tls-key-file and -tls-ca-file: HTTPS admin API, mutual TLS on the raft port")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "the private key of -tls-cert-file (PEM)")
	fs.StringVar(&c.TLSCAFile, "tls-ca-file", c.TLSCAFile, "the cluster's certificate authority (PEM)")
	fs.BoolVar(&c.VerifyIncoming, "verify-incoming", c.VerifyIncoming, "the admin API requires a client certificate of the CA")
	fs.BoolVar(&c.VerifyOutgoing, "verify-outgoing", c.VerifyOutgoing, "check the certificates of the registrars this one dials")
	fs.StringVar(&c.HTTPTokensFile, "http-tokens-file", c.HTTPTokensFile, "JSON file of admin API tokens with their roles (read, write, operator)")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow the admin API, raft and gossip on non-loopback addresses without TLS, tokens or a gossip key")
	fs.Int64Var(&c.MaxSnapshotSize, "max-snapshot-size", c.MaxSnapshotSize, "largest snapshot upload accepted, in bytes")
}

// tlsSpec makes host:port a tls: transport spec.
func tlsSpec(hp string) string {
	if strings.HasPrefix(hp, "tls:") {
		return hp
	}
	return "tls:" + hp
}

// tlsFiles are the configured TLS files.
func (c *Config) tlsFiles() tlsutil.Files {
	return tlsutil.Files{Cert: c.TLSCertFile, Key: c.TLSKeyFile, CA: c.TLSCAFile}
}

// TLSEnabled reports whether the registrar has a certificate (and so
// serves its admin API over HTTPS and the raft port over mutual TLS).
func (c *Config) TLSEnabled() bool { return c.TLSCertFile != "" }

// validateSecurity checks the security settings and the safe defaults.
func (c *Config) validateSecurity() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &ConfigError{Key: field, Msg: fmt.Sprintf(format, a...)})
	}
	f := c.tlsFiles()
	if !f.IsZero() {
		for _, k := range []struct{ key, v string }{{"tls_cert_file", f.Cert}, {"tls_key_file", f.Key}, {"tls_ca_file", f.CA}} {
			if k.v == "" {
				bad(k.key, "missing: TLS needs tls_cert_file, tls_key_file and tls_ca_file together")
			}
		}
	}
	for _, l := range []struct{ key, v string }{{"asap_tls", c.ASAPTLS}, {"enrp_tls", c.ENRPTLS}} {
		if l.v == "off" {
			continue
		}
		if _, err := transport.ParseSpec(tlsSpec(l.v)); err != nil {
			bad(l.key, "%v", err)
		} else if !c.TLSEnabled() {
			bad(l.key, "needs TLS (tls_cert_file, tls_key_file, tls_ca_file)")
		}
	}
	if c.VerifyIncoming && !c.TLSEnabled() {
		bad("verify_incoming", "needs TLS (tls_cert_file, tls_key_file, tls_ca_file)")
	}
	if c.MaxSnapshotSize < 1<<20 {
		bad("max_snapshot_size", "%d is below 1 MiB", c.MaxSnapshotSize)
	}
	if c.Insecure {
		return errs
	}
	const fix = " (or set insecure to accept that; see docs/security.md)"
	if c.HTTP != "off" && !loopbackHostPort(c.HTTP) && (!c.TLSEnabled() || c.HTTPTokensFile == "") {
		bad("http", "the admin API on %s, a non-loopback address, needs TLS (tls_cert_file, tls_key_file, tls_ca_file) and tokens (http_tokens_file): anyone who reaches it could replace the handlespace or stop the registrar"+fix, c.HTTP)
	}
	if !c.TLSEnabled() {
		for _, a := range []struct{ key, v string }{{"raft", c.Raft}, {"raft_advertise", c.RaftAdvertise}} {
			if a.v != "" && !loopbackHostPort(a.v) {
				bad(a.key, "the raft port on %s, a non-loopback address, needs TLS (tls_cert_file, tls_key_file, tls_ca_file): anyone who reaches it could write to the handlespace"+fix, a.v)
				break
			}
		}
	}
	if c.Encrypt == "" {
		for _, a := range []struct{ key, v string }{{"gossip", c.Gossip}, {"gossip_advertise", c.GossipAdvertise}} {
			if a.v != "" && !loopbackHostPort(a.v) {
				bad("encrypt", "gossip on %s, a non-loopback address, needs a gossip key (encrypt): anyone who reaches it could pose as a member"+fix, a.v)
				break
			}
		}
	}
	return errs
}

// insecureExposures lists what Insecure let through (warned about at
// every start).
func (c *Config) insecureExposures() []string {
	var out []string
	if c.HTTP != "off" && !loopbackHostPort(c.HTTP) {
		if !c.TLSEnabled() {
			out = append(out, "admin API without TLS on "+c.HTTP)
		}
		if c.HTTPTokensFile == "" {
			out = append(out, "admin API without tokens on "+c.HTTP)
		}
	}
	if !c.TLSEnabled() && (!loopbackHostPort(c.Raft) || c.RaftAdvertise != "" && !loopbackHostPort(c.RaftAdvertise)) {
		out = append(out, "raft port without TLS on "+c.Raft)
	}
	if c.Encrypt == "" && (!loopbackHostPort(c.Gossip) || c.GossipAdvertise != "" && !loopbackHostPort(c.GossipAdvertise)) {
		out = append(out, "gossip without a key on "+c.Gossip)
	}
	return out
}

// loopbackHostPort reports whether host:port names a loopback address
// (127.0.0.0/8, ::1, localhost); the wildcard and other hosts are not.
func loopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// raftConfig is the cluster's raft settings with the TLS material.
func (r *Registrar) raftConfig() cluster.RaftConfig {
	rc := r.cfg.raftConfig()
	rc.TLS = r.tls
	return rc
}

// clientAuth is what the admin API and the ASAP TLS listener ask of
// clients: a certificate of the CA with verify_incoming, else one only
// if given.
func (r *Registrar) clientAuth() tlsutil.ClientAuth {
	if r.cfg.VerifyIncoming {
		return tlsutil.ClientRequired
	}
	return tlsutil.ClientOptional
}

// tlsList formats a TLS listener's addresses ("tls:host:port"; nil: off).
func tlsList(ln transport.Listener) []string {
	if ln == nil {
		return nil
	}
	var out []string
	for _, a := range ln.Addrs() {
		out = append(out, "tls:"+a.String())
	}
	return out
}

// ASAPTLSAddr is the ASAP TLS listener's first address ("tls:host:port";
// "" when off).
func (r *Registrar) ASAPTLSAddr() string {
	if l := tlsList(r.asapTLSLn); len(l) > 0 {
		return l[0]
	}
	return ""
}

// ENRPTLSAddr is the ENRP TLS listener's first address ("tls:host:port";
// "" when off).
func (r *Registrar) ENRPTLSAddr() string {
	if l := tlsList(r.enrpTLSLn); len(l) > 0 {
		return l[0]
	}
	return ""
}
