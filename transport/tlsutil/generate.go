package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// A small certificate authority for a cluster (`registrar tls ca|cert`):
// ECDSA P-256 keys, PEM files.

// PEM is a certificate and its private key, PEM-encoded.
type PEM struct {
	Cert, Key []byte
}

// CertOptions describe a certificate to issue.
type CertOptions struct {
	// Name is the subject's common name.
	Name string
	// Hosts are the DNS names and IP addresses the certificate is valid
	// for (a registrar's admin API and ASAP/ENRP TLS listeners are
	// checked by their clients against them).
	Hosts []string
	// Client makes a client certificate (client authentication only: the
	// CLI, a PE or PU); otherwise it is a registrar certificate (server and
	// client authentication).
	Client bool
	// NotBefore and NotAfter bound the validity (zero NotBefore: now less
	// a minute; zero NotAfter: NotBefore plus Validity).
	NotBefore, NotAfter time.Time
	// Validity is used when NotAfter is zero (default one year).
	Validity time.Duration
}

func (o *CertOptions) bounds() (time.Time, time.Time) {
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	if na.IsZero() {
		v := o.Validity
		if v <= 0 {
			v = 365 * 24 * time.Hour
		}
		na = nb.Add(v)
	}
	return nb, na
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEM{}, err
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}, nil
}

// NewCA makes a self-signed CA certificate named name.
func NewCA(name string, o CertOptions) (PEM, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	sn, err := serial()
	if err != nil {
		return PEM{}, err
	}
	nb, na := o.bounds()
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return PEM{}, err
	}
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: name}, NotBefore: nb, NotAfter: na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true, SubjectKeyId: ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEM{}, err
	}
	return encode(der, key)
}

// Issue makes a certificate signed by the CA (its PEM certificate and
// key).
func Issue(ca PEM, o CertOptions) (PEM, error) {
	if o.Name == "" {
		return PEM{}, errors.New("tls: a certificate needs a name")
	}
	cb, _ := pem.Decode(ca.Cert)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return PEM{}, errors.New("tls: the CA certificate is not a PEM certificate")
	}
	caCert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return PEM{}, fmt.Errorf("tls: CA certificate: %w", err)
	}
	if !caCert.IsCA {
		return PEM{}, errors.New("tls: the CA certificate is not a CA's")
	}
	kb, _ := pem.Decode(ca.Key)
	if kb == nil {
		return PEM{}, errors.New("tls: the CA key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return PEM{}, fmt.Errorf("tls: CA key: %w", err)
	}
	caKey, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return PEM{}, errors.New("tls: the CA key is not an ECDSA key")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	sn, err := serial()
	if err != nil {
		return PEM{}, err
	}
	nb, na := o.bounds()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: o.Name}, NotBefore: nb, NotAfter: na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return PEM{}, err
	}
	return encode(der, key)
}
