//go:build linux

package transport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// openMulticastSocket opens the UDP socket of a Multicast and sets the
// multicast socket options (ip(7), ipv6(7)).
func openMulticastSocket(ctx context.Context, group netip.AddrPort, ifi *net.Interface, cfg MulticastConfig) (*net.UDPConn, error) {
	v4 := group.Addr().Is4()
	network := "udp6"
	if v4 {
		network = "udp4"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return os.NewSyscallError("setsockopt SO_REUSEADDR", serr)
	}}
	pc, err := lc.ListenPacket(ctx, network, bindAddr(group, cfg.SendOnly))
	if err != nil {
		return nil, err
	}
	uc := pc.(*net.UDPConn)
	rc, err := uc.SyscallConn()
	if err != nil {
		_ = uc.Close()
		return nil, err
	}
	ifindex := 0
	if ifi != nil {
		ifindex = ifi.Index
	}
	loop := 0
	if cfg.Loopback {
		loop = 1
	}
	var serr error
	set := func(what string, err error) {
		if err != nil && serr == nil {
			serr = fmt.Errorf("setsockopt %s: %w", what, err)
		}
	}
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if v4 {
			if !cfg.SendOnly {
				set("IP_ADD_MEMBERSHIP", syscall.SetsockoptIPMreqn(s, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP,
					&syscall.IPMreqn{Multiaddr: group.Addr().As4(), Ifindex: int32(ifindex)}))
			}
			if ifindex != 0 {
				set("IP_MULTICAST_IF", syscall.SetsockoptIPMreqn(s, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF,
					&syscall.IPMreqn{Ifindex: int32(ifindex)}))
			}
			set("IP_MULTICAST_TTL", syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, cfg.TTL))
			set("IP_MULTICAST_LOOP", syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, loop))
			return
		}
		if !cfg.SendOnly {
			set("IPV6_JOIN_GROUP", syscall.SetsockoptIPv6Mreq(s, syscall.IPPROTO_IPV6, syscall.IPV6_JOIN_GROUP,
				&syscall.IPv6Mreq{Multiaddr: group.Addr().As16(), Interface: uint32(ifindex)}))
		}
		if ifindex != 0 {
			set("IPV6_MULTICAST_IF", syscall.SetsockoptInt(s, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, ifindex))
		}
		set("IPV6_MULTICAST_HOPS", syscall.SetsockoptInt(s, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, cfg.TTL))
		set("IPV6_MULTICAST_LOOP", syscall.SetsockoptInt(s, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_LOOP, loop))
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		_ = uc.Close()
		return nil, err
	}
	return uc, nil
}
