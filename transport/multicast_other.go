//go:build !linux

package transport

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

func openMulticastSocket(context.Context, netip.AddrPort, *net.Interface, MulticastConfig) (*net.UDPConn, error) {
	return nil, errors.New("multicast sockets are implemented for Linux only")
}
