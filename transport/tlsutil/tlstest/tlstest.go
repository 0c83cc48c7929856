// Package tlstest makes certificate authorities and certificates for
// tests, in a test's temporary directory (no private key is checked in).
package tlstest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// CA is a test certificate authority with its files in Dir.
type CA struct {
	t   testing.TB
	Dir string
	PEM tlsutil.PEM
	// File is the CA certificate's file (tls_ca_file).
	File string
}

// New makes a CA named name in a new temporary directory.
func New(t testing.TB, name string) *CA {
	t.Helper()
	p, err := tlsutil.NewCA(name, tlsutil.CertOptions{})
	if err != nil {
		t.Fatalf("make CA %s: %v", name, err)
	}
	dir := t.TempDir()
	ca := &CA{t: t, Dir: dir, PEM: p, File: filepath.Join(dir, "ca.pem")}
	write(t, ca.File, p.Cert)
	return ca
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Issue makes a certificate with o and writes it to name.pem and
// name-key.pem; the files it returns name the CA too.
func (ca *CA) Issue(name string, o tlsutil.CertOptions) tlsutil.Files {
	ca.t.Helper()
	if o.Name == "" {
		o.Name = name
	}
	p, err := tlsutil.Issue(ca.PEM, o)
	if err != nil {
		ca.t.Fatalf("issue %s: %v", name, err)
	}
	f := tlsutil.Files{Cert: filepath.Join(ca.Dir, name+".pem"), Key: filepath.Join(ca.Dir, name+"-key.pem"), CA: ca.File}
	write(ca.t, f.Cert, p.Cert)
	write(ca.t, f.Key, p.Key)
	return f
}

// Registrar issues a registrar certificate for 127.0.0.1, ::1 and
// localhost.
func (ca *CA) Registrar(name string) tlsutil.Files {
	return ca.Issue(name, tlsutil.CertOptions{Hosts: []string{"127.0.0.1", "::1", "localhost"}})
}

// Client issues a client certificate.
func (ca *CA) Client(name string) tlsutil.Files {
	return ca.Issue(name, tlsutil.CertOptions{Client: true})
}

// Expired issues a registrar certificate that expired an hour ago.
func (ca *CA) Expired(name string) tlsutil.Files {
	now := time.Now()
	return ca.Issue(name, tlsutil.CertOptions{Hosts: []string{"127.0.0.1", "::1", "localhost"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
}

// Store loads files into a tlsutil.Store.
func Store(t testing.TB, f tlsutil.Files) *tlsutil.Store {
	t.Helper()
	s, err := tlsutil.NewStore(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
