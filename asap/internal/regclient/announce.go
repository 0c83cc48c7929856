package regclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// announced is a registrar learnt from ASAP_SERVER_ANNOUNCE.
type announced struct {
	id   uint32
	spec string
	seen time.Time
}

// announces collects the registrars heard on the multicast group.
type announces struct {
	group   string
	timeout time.Duration
	log     hclog.Logger
	m       *transport.Multicast

	mu      sync.Mutex
	entries map[string]*announced // by spec
	changed chan struct{}         // closed and replaced when an entry is added
}

func openAnnounces(ctx context.Context, group, ifname string, timeout time.Duration, log hclog.Logger) (*announces, error) {
	mc := transport.DefaultMulticastConfig()
	mc.Interface = ifname
	mc.Logger = log
	m, err := transport.OpenMulticast(ctx, group, mc)
	if err != nil {
		return nil, fmt.Errorf("listen for registrar announces on %s: %w", group, err)
	}
	return &announces{group: group, timeout: timeout, log: log, m: m,
		entries: map[string]*announced{}, changed: make(chan struct{})}, nil
}

// run receives announces until the multicast socket is closed.
func (a *announces) run(ctx context.Context) {
	for {
		b, src, err := a.m.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
				a.log.Warn("registrar announces no longer received", "group", a.group, "error", err)
			}
			return
		}
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			a.log.Debug("undecodable datagram on the announce group", "from", src.String(), "error", err)
			continue
		}
		sa, ok := m.(*asap.ServerAnnounce)
		if !ok {
			continue
		}
		a.add(sa, src, time.Now())
	}
}

// specsOf lists the ASAP endpoints an announce names: its TCP and SCTP
// transport parameters, or (none, as RSPLIB sends) the UDP source address
// and port standing for the registrar's SCTP endpoint.
func specsOf(sa *asap.ServerAnnounce, src netip.AddrPort) []string {
	var specs []string
	for _, t := range sa.Transports {
		if s, ok := Spec(t); ok {
			specs = append(specs, s)
		}
	}
	if len(sa.Transports) == 0 && src.IsValid() && src.Port() != 0 {
		specs = append(specs, transport.HostList([]netip.Addr{src.Addr()})+":"+strconv.Itoa(int(src.Port())))
	}
	return specs
}

func (a *announces) add(sa *asap.ServerAnnounce, src netip.AddrPort, now time.Time) {
	specs := specsOf(sa, src)
	a.mu.Lock()
	defer a.mu.Unlock()
	fresh := false
	for _, s := range specs {
		e, ok := a.entries[s]
		if !ok {
			e = &announced{spec: s}
			a.entries[s] = e
			fresh = true
			a.log.Debug("registrar heard", "id", fmt.Sprintf("0x%08x", sa.ServerID), "asap", s)
		}
		e.id, e.seen = sa.ServerID, now
	}
	if fresh {
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

// list returns the live entries, the preferred registrar first, then by
// the time they were last heard (most recent first); and a channel closed
// when a new one appears.
func (a *announces) list(now time.Time, preferred uint32) ([]announced, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []announced
	for s, e := range a.entries {
		if now.Sub(e.seen) > a.timeout {
			delete(a.entries, s)
			continue
		}
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := out[i].id == preferred && preferred != 0, out[j].id == preferred && preferred != 0
		if pi != pj {
			return pi
		}
		if !out[i].seen.Equal(out[j].seen) {
			return out[i].seen.After(out[j].seen)
		}
		return out[i].spec < out[j].spec
	})
	return out, a.changed
}

// idOf returns the server ID announced for spec (0 if unknown).
func (a *announces) idOf(spec string) uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.entries[spec]; ok {
		return e.id
	}
	return 0
}

func (a *announces) close() { _ = a.m.Close() }
