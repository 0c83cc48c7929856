//go:build !linux || 386

package transport

import (
	"context"
	"io"
	"net/netip"
)

// SCTP is implemented for Linux (not 386) only; elsewhere sctp: fails with ErrNoSCTP
// and auto addresses use TCP.

func probeSCTP() error { return ErrNoSCTP }

type sctpListener struct{ io.Closer }

func (*sctpListener) Addr() Endpoint        { return Endpoint{} }
func (*sctpListener) accept() (Conn, error) { return nil, ErrNoSCTP }
func listenSCTP([]netip.Addr, uint16, Config) (*sctpListener, error) {
	return nil, ErrNoSCTP
}

func dialSCTP(context.Context, []netip.Addr, uint16, Config) (Conn, error) {
	return nil, ErrNoSCTP
}
