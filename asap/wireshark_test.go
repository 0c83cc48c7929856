package asap_test

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/wiretest"
)

// Ensure that Wireshark decodes what we encode: every message type, every
// policy, every cause, with no malformed packet or expert warning, and with
// the key fields equal to what was encoded. ASAP goes in SCTP DATA chunks
// with PPID 11; SERVER_ANNOUNCE also over UDP 3863 as it is sent.
func TestWireshark(t *testing.T) {
	wiretest.Require(t)
	var msgs []asap.Message
	for _, s := range samples() {
		msgs = append(msgs, s.msg)
	}
	for _, ps := range policySamples() {
		if !ps.p.Type.Known() {
			continue // shown raw by Wireshark; RSPLIB refuses it too
		}
		p := echoPE
		p.Policy = ps.p
		msgs = append(msgs, &asap.Registration{PoolHandle: "policies", PoolElement: p})
	}
	for _, c := range []asap.CauseCode{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} {
		var info []byte
		if c.NeedsInfo() {
			info, _ = asap.Pack(&asap.HandleResolution{PoolHandle: "x"})
			if c != asap.CauseUnrecognizedMessage {
				info = info[4:] // the pool handle parameter alone
			}
		}
		msgs = append(msgs, &asap.Error{Error: *asap.NewOperationError(c, info)})
	}

	var wire [][]byte
	for _, m := range msgs {
		b, err := asap.Pack(m)
		if err != nil {
			t.Fatalf("Pack %v: %v", m.Type(), err)
		}
		wire = append(wire, b)
	}
	fields := []string{"asap.message_type", "asap.message_length", "asap.pool_handle_pool_handle",
		"asap.pool_element_pe_identifier", "asap.pe_identifier", "asap.pool_member_selection_policy_type",
		"asap.cause_code", "asap.server_identifier", "asap.cookie"}
	pkts := wiretest.Decode(t, wiretest.SCTPASAP, wire, fields)
	if len(pkts) != len(wire) {
		t.Fatalf("tshark returned %d packets, want %d", len(pkts), len(wire))
	}
	for i, p := range pkts {
		m := msgs[i]
		name := fmt.Sprintf("#%d %v", i, m.Type())
		if pr := p.Problems(); pr != "" {
			t.Errorf("%s (%x): %s", name, wire[i], pr)
		}
		check := func(field, want string) {
			if got := p.First(field); got != want {
				t.Errorf("%s: %s = %q, want %q", name, field, got, want)
			}
		}
		check("asap.message_type", strconv.Itoa(int(m.Type())))
		check("asap.message_length", strconv.Itoa(len(wire[i])))
		var h asap.PoolHandle
		var pe *asap.PoolElement
		var peid uint32
		hasID := false
		switch v := m.(type) {
		case *asap.Registration:
			h, pe = v.PoolHandle, &v.PoolElement
		case *asap.HandleResolution:
			h = v.PoolHandle
		case *asap.HandleResolutionResponse:
			h = v.PoolHandle
			if len(v.PEs) > 0 {
				pe = &v.PEs[0]
			}
		case *asap.Deregistration:
			h, peid, hasID = v.PoolHandle, v.ID, true
		case *asap.RegistrationResponse:
			h, peid, hasID = v.PoolHandle, v.ID, true
		case *asap.EndpointKeepAlive:
			h, peid, hasID = v.PoolHandle, v.ID, v.HasID
			check("asap.server_identifier", fmt.Sprintf("0x%08x", v.ServerID))
		case *asap.EndpointUnreachable:
			h, peid, hasID = v.PoolHandle, v.ID, true
		case *asap.Cookie:
			check("asap.cookie", hex.EncodeToString(v.Cookie))
		case *asap.Error:
			check("asap.cause_code", fmt.Sprintf("0x%04x", uint16(v.Error.First())))
		}
		if h != "" {
			check("asap.pool_handle_pool_handle", hex.EncodeToString([]byte(h)))
		}
		if pe != nil {
			check("asap.pool_element_pe_identifier", fmt.Sprintf("0x%08x", pe.ID))
			check("asap.pool_member_selection_policy_type", fmt.Sprintf("0x%08x", uint32(pe.Policy.Type)))
		}
		if hasID {
			check("asap.pe_identifier", fmt.Sprintf("0x%08x", peid))
		}
	}

	// Announces travel by UDP multicast to port 3863.
	var announces [][]byte
	for _, s := range samples() {
		if s.msg.Type() == asap.TypeServerAnnounce {
			announces = append(announces, s.wire)
		}
	}
	for i, p := range wiretest.Decode(t, wiretest.UDPASAP, announces, []string{"asap.message_type", "asap.server_identifier"}) {
		if pr := p.Problems(); pr != "" {
			t.Errorf("announce %d over UDP: %s", i, pr)
		}
		if got := p.First("asap.message_type"); got != "10" {
			t.Errorf("announce %d over UDP: type %q, want 10", i, got)
		}
	}
}
