package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// Ensure the documented command sequence makes a CA, registrar
// certificates for given hosts and a client certificate that work
// together: a registrar's certificate verifies for its hosts and both
// authentications, the client's for client authentication only; keys are
// private to their owner and nothing is overwritten.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"ca", "-dir", dir},
		{"cert", "-dir", dir, "-name", "registrar1", "-host", "registrar1.example,10.0.0.5"},
		{"cert", "-dir", dir, "-name", "ops", "-client"},
	} {
		if code := runTLS(args); code != 0 {
			t.Fatalf("registrar tls %q: exit %d", args, code)
		}
	}
	if code := runTLS([]string{"ca", "-dir", dir}); code == 0 {
		t.Fatal("a second `tls ca` in the same directory overwrote the CA")
	}
	for _, k := range []string{"ca-key.pem", "registrar1-key.pem", "ops-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", k, fi.Mode().Perm(), err)
		}
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	load := func(name string) *x509.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	reg := load("registrar1")
	for _, host := range []string{"registrar1.example", "10.0.0.5"} {
		if _, err := reg.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("the registrar certificate for %s: %v", host, err)
		}
	}
	if !slices.Contains(reg.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || !slices.Contains(reg.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("the registrar certificate's key usages are %v, want server and client", reg.ExtKeyUsage)
	}
	cli := load("ops")
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the client certificate: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Error("the client certificate verifies for server authentication")
	}
	if _, err := tlsutil.Load(tlsutil.Files{Cert: filepath.Join(dir, "registrar1.pem"), Key: filepath.Join(dir, "registrar1-key.pem"), CA: filepath.Join(dir, "ca.pem")}); err != nil {
		t.Errorf("the files do not load as a registrar's TLS files: %v", err)
	}
}
