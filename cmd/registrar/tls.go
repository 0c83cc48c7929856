package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

const tlsUsage = `usage: registrar tls ca [-dir DIR] [-name NAME] [-days N]
       registrar tls cert [-dir DIR] [-ca FILE] [-ca-key FILE] -name NAME [-host H,...] [-client] [-days N]

ca makes a certificate authority for a cluster: DIR/ca.pem (give it to every
registrar and client as tls_ca_file / -ca-file) and DIR/ca-key.pem (keep it
off the registrars). cert issues a certificate signed by it: DIR/NAME.pem and
DIR/NAME-key.pem; a registrar certificate (the default: server and client
authentication, for tls_cert_file) lists with -host the names and addresses
its clients use for its admin API; -client makes a client certificate (the
CLI's with verify_incoming). Existing files are never overwritten. ECDSA
P-256 keys; see docs/security.md.`

func runTLS(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(cli.Stderr, "registrar tls: want a subcommand: ca or cert")
		fmt.Fprintln(cli.Stderr, "run 'registrar tls -h' for usage")
		return 2
	}
	if cli.IsHelp(args[0]) {
		fmt.Fprintln(cli.Stdout, tlsUsage)
		return 0
	}
	fs := flag.NewFlagSet("registrar tls "+args[0], flag.ContinueOnError)
	cli.SetUsage(fs, tlsUsage)
	dir := fs.String("dir", ".", "directory of the files")
	days := fs.Int("days", 0, "validity in days (default: CA 3650, certificate 365)")
	switch args[0] {
	case "ca":
		name := fs.String("name", "registrar cluster CA", "the CA's common name")
		if code, ok := cli.Parse(fs, args[1:]); !ok {
			return code
		}
		if fs.NArg() > 0 {
			return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
		}
		v := 3650
		if *days > 0 {
			v = *days
		}
		p, err := tlsutil.NewCA(*name, tlsutil.CertOptions{Validity: time.Duration(v) * 24 * time.Hour})
		if err != nil {
			return fail("tls ca", err)
		}
		cert, key := filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca-key.pem")
		if err := writeNew(cert, key, p); err != nil {
			return fail("tls ca", err)
		}
		fmt.Printf("wrote %s (tls_ca_file, -ca-file) and %s (keep it off the registrars), valid %d days\n", cert, key, v)
		return 0
	case "cert":
		caFile := fs.String("ca", "", "the CA certificate (default DIR/ca.pem)")
		caKey := fs.String("ca-key", "", "the CA key (default DIR/ca-key.pem)")
		name := fs.String("name", "", "the certificate's name: its common name and file names")
		hosts := fs.String("host", "", "comma list of DNS names and IP addresses the certificate is valid for (default localhost,127.0.0.1,::1)")
		client := fs.Bool("client", false, "a client certificate (client authentication only)")
		if code, ok := cli.Parse(fs, args[1:]); !ok {
			return code
		}
		if fs.NArg() > 0 {
			return cli.UsageError(fs, "unexpected arguments %q", fs.Args())
		}
		if *name == "" || strings.ContainsAny(*name, `/\`) {
			return cli.UsageError(fs, "want -name NAME (no slashes): the certificate's name and file names")
		}
		if *caFile == "" {
			*caFile = filepath.Join(*dir, "ca.pem")
		}
		if *caKey == "" {
			*caKey = filepath.Join(*dir, "ca-key.pem")
		}
		var ca tlsutil.PEM
		var err error
		if ca.Cert, err = os.ReadFile(*caFile); err != nil {
			return fail("tls cert", fmt.Errorf("the CA certificate: %w (make one with `registrar tls ca`)", err))
		}
		if ca.Key, err = os.ReadFile(*caKey); err != nil {
			return fail("tls cert", fmt.Errorf("the CA key: %w", err))
		}
		o := tlsutil.CertOptions{Name: *name, Client: *client, Validity: 365 * 24 * time.Hour}
		if *days > 0 {
			o.Validity = time.Duration(*days) * 24 * time.Hour
		}
		if !*client {
			o.Hosts = []string{"localhost", "127.0.0.1", "::1"}
			if *hosts != "" {
				o.Hosts = nil
				for _, h := range strings.Split(*hosts, ",") {
					if h = strings.TrimSpace(h); h != "" {
						o.Hosts = append(o.Hosts, h)
					}
				}
			}
		}
		p, err := tlsutil.Issue(ca, o)
		if err != nil {
			return fail("tls cert", err)
		}
		cert, key := filepath.Join(*dir, *name+".pem"), filepath.Join(*dir, *name+"-key.pem")
		if err := writeNew(cert, key, p); err != nil {
			return fail("tls cert", err)
		}
		kind := "registrar certificate (tls_cert_file, tls_key_file) for " + strings.Join(o.Hosts, ",")
		if *client {
			kind = "client certificate (-client-cert, -client-key)"
		}
		fmt.Printf("wrote %s and %s: %s\n", cert, key, kind)
		return 0
	}
	return cli.Unknown("registrar tls", "subcommand", args[0], []string{"ca", "cert"}, "registrar tls -h")
}

// writeNew writes a certificate (0644) and its key (0600), refusing to
// replace either.
func writeNew(certPath, keyPath string, p tlsutil.PEM) error {
	for _, f := range []string{certPath, keyPath} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s exists: not overwritten (remove it first)", f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := kf.Write(p.Key); err != nil {
		kf.Close()
		return err
	}
	if err := kf.Close(); err != nil {
		return err
	}
	return os.WriteFile(certPath, p.Cert, 0o644)
}
