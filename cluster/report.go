package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/hashicorp/memberlist"

	"github.com/rserpool-go/registrar/asap"
)

// Report is an ASAP_ENDPOINT_UNREACHABLE report that a registrar passes
// to the PE's home in its cluster, so that reports to different members
// count together where the PE is supervised (and its keep-alive answers
// reset them).
type Report struct {
	Pool     asap.PoolHandle
	PE       uint32
	Reporter netip.Addr // the PU that reported it
	From     uint32     // the member that passed it on (set on arrival)
}

// reportMsg tags a Report sent over gossip's reliable stream (which the
// gossip key encrypts): 'U', the sender's ID and the PE ID (4 bytes
// each), the reporter's address (16), then the pool handle.
const reportMsg = 'U'

// reportQueue is how many received reports wait for the registrar; more
// are dropped (reports are rate-limited per PU connection where they
// enter the cluster).
const reportQueue = 1024

// maxReportPool bounds a report's pool handle (the ASAP limit is
// configurable, and lower).
const maxReportPool = 4096

func (m *Membership) encodeReport(r Report) []byte {
	b := make([]byte, 0, 25+len(r.Pool))
	b = append(b, reportMsg)
	b = binary.BigEndian.AppendUint32(b, m.node.cfg.ID)
	b = binary.BigEndian.AppendUint32(b, r.PE)
	a := r.Reporter.As16()
	b = append(b, a[:]...)
	return append(b, r.Pool...)
}

func decodeReport(b []byte) (Report, error) {
	if len(b) < 26 || b[0] != reportMsg {
		return Report{}, errors.New("short unreachability report")
	}
	if len(b)-25 > maxReportPool {
		return Report{}, fmt.Errorf("pool handle of %d bytes in an unreachability report", len(b)-25)
	}
	return Report{From: binary.BigEndian.Uint32(b[1:5]), PE: binary.BigEndian.Uint32(b[5:9]),
		Reporter: netip.AddrFrom16([16]byte(b[9:25])).Unmap(), Pool: asap.PoolHandle(b[25:])}, nil
}

// SendReport passes r to the cluster member with ID to over gossip's
// reliable stream. It blocks for up to gossip's TCP timeout: call it off
// any reader's path.
func (h *Handlespace) SendReport(to uint32, r Report) error {
	return h.members.sendReport(to, r)
}

// Reports are the reports other members passed to this registrar.
func (h *Handlespace) Reports() <-chan Report { return h.members.reports }

func (m *Membership) sendReport(to uint32, r Report) error {
	m.mu.Lock()
	var name string
	for n, mb := range m.members {
		if mb.Meta.ID == to && mb.Status == StatusAlive {
			name = n
		}
	}
	m.mu.Unlock()
	if name == "" {
		return fmt.Errorf("no alive member %08x", to)
	}
	var node *memberlist.Node
	for _, n := range m.ml.Members() {
		if n.Name == name {
			node = n
		}
	}
	if node == nil {
		return fmt.Errorf("member %08x is not in gossip", to)
	}
	return m.ml.SendReliable(node, m.encodeReport(r))
}

// takeReport queues a report that arrived (never blocks gossip).
func (m *Membership) takeReport(b []byte) {
	r, err := decodeReport(b)
	if err != nil {
		m.log.Debug("dropping a malformed member message", "error", err)
		return
	}
	select {
	case m.reports <- r:
	default:
		m.log.Debug("dropping an unreachability report: queue full", "pe", fmt.Sprintf("%08x", r.PE))
	}
}
