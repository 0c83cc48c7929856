package registrar

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// startAnnounce sends ASAP_SERVER_ANNOUNCE to group every
// AnnounceInterval. The announce carries our ASAP endpoints as transport
// parameters (RSPLIB's own announces carry none, so its receivers would
// take the UDP source address, which routing picks).
func (r *Registrar) startAnnounce(ctx context.Context, group string) error {
	mc := transport.DefaultMulticastConfig()
	mc.SendOnly = true
	mc.TTL = r.cfg.AnnounceTTL
	mc.Interface = r.cfg.AnnounceInterface
	mc.Logger = r.log.Named("announce")
	m, err := transport.OpenMulticast(ctx, group, mc)
	if err != nil {
		return err
	}
	msg, err := asap.Pack(r.announceMessage())
	if err != nil {
		m.Close()
		return err
	}
	ok := r.goFunc(func() {
		defer m.Close()
		t := time.NewTicker(r.cfg.AnnounceInterval.D())
		defer t.Stop()
		for {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := m.Send(sctx, msg); err != nil {
				r.log.Debug("announce not sent", "error", err)
			}
			cancel()
			select {
			case <-r.quit:
				return
			case <-t.C:
			}
		}
	})
	if !ok {
		m.Close()
	}
	r.log.Info("announcing ASAP endpoints", "group", group, "interval", r.cfg.AnnounceInterval.D())
	return nil
}

func (r *Registrar) announceMessage() *asap.ServerAnnounce {
	a := &asap.ServerAnnounce{ServerID: r.id}
	for _, na := range r.asapLn.Addrs() {
		t := asap.Transport{Kind: asap.ParamTCPTransport}
		switch na.Kind {
		case transport.KindTCP:
		case transport.KindSCTP:
			t.Kind = asap.ParamSCTPTransport
		default:
			continue
		}
		for _, a := range na.Addrs {
			if a.IsUnspecified() {
				// A wildcard listener: announce the host's addresses.
				t.Addrs = append(t.Addrs, hostAddrs(a.Is4())...)
				continue
			}
			t.Addrs = append(t.Addrs, a)
		}
		t.Port = na.Port
		if len(t.Addrs) == 0 || t.Port == 0 {
			continue
		}
		if t.Kind == asap.ParamSCTPTransport {
			a.Transports = append(a.Transports, t) // multi-homed: one parameter
			continue
		}
		for _, addr := range t.Addrs { // TCP: one address per parameter
			one := t
			one.Addrs = []netip.Addr{addr}
			a.Transports = append(a.Transports, one)
		}
	}
	return a
}

// hostAddrs lists this host's addresses of one family, loopback last and
// link-local left out (unusable without a zone), for announcing a wildcard
// listener.
func hostAddrs(v4 bool) []netip.Addr {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out, loop []netip.Addr
	for _, ifa := range ifas {
		ipn, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.Is4() != v4 || a.IsLinkLocalUnicast() || a.IsMulticast() {
			continue
		}
		if a.IsLoopback() {
			loop = append(loop, a)
		} else {
			out = append(out, a)
		}
	}
	return append(out, loop...)
}
