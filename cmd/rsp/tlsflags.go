package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"

	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// tlsFlags configure tls: registrar addresses (ASAP over TLS, the
// registrar's asap_tls listener): the CA that checks the registrar and
// the client certificate a registrar with verify_incoming wants.
type tlsFlags struct {
	ca, cert, key string
}

func (t *tlsFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&t.ca, "tls-ca-file", os.Getenv("RSP_TLS_CA_FILE"), "for tls: registrar addresses: the CA certificate that checks the registrar (default: the system's roots; env RSP_TLS_CA_FILE)")
	fs.StringVar(&t.cert, "tls-cert-file", os.Getenv("RSP_TLS_CERT_FILE"), "for tls: registrar addresses: the client certificate (env RSP_TLS_CERT_FILE)")
	fs.StringVar(&t.key, "tls-key-file", os.Getenv("RSP_TLS_KEY_FILE"), "the key of -tls-cert-file (env RSP_TLS_KEY_FILE)")
}

// config is the TLS client configuration, one for every connection of
// the command (they share its session cache, so new connections resume
// TLS sessions).
func (t *tlsFlags) config() (*tls.Config, error) {
	st, err := tlsutil.NewStore(tlsutil.Files{CA: t.ca, Cert: t.cert, Key: t.key})
	if err != nil {
		return nil, fmt.Errorf("%w (-tls-ca-file, -tls-cert-file, -tls-key-file)", err)
	}
	c := st.ClientConfig("")
	c.ClientSessionCache = tls.NewLRUClientSessionCache(256)
	return c, nil
}
