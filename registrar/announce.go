package registrar

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/ishidawataru/sctp"

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
		var ips []net.IP
		var port int
		switch v := na.(type) {
		case *net.TCPAddr:
			ips, port = []net.IP{v.IP}, v.Port
		case *sctp.SCTPAddr:
			t.Kind = asap.ParamSCTPTransport
			for _, ia := range v.IPAddrs {
				ips = append(ips, ia.IP)
			}
			port = v.Port
		default:
			continue
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip); ok && !a.IsUnspecified() {
				t.Addrs = append(t.Addrs, a.Unmap())
			}
		}
		t.Port = uint16(port)
		if len(t.Addrs) > 0 && t.Port != 0 {
			a.Transports = append(a.Transports, t)
		}
	}
	return a
}
