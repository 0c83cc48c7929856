// Package csp encodes and decodes RSPLIB's Component Status Protocol: the
// status reports that registrars, pool elements and pool users send over
// UDP to a monitor (RSPLIB's cspmonitor, port 2960) every report interval,
// and once more with the final flag when they stop.
//
// CSP is not an IETF protocol; its one definition is RSPLIB's source
// (src/componentstatuspackets.h, src/componentstatusreporter.c,
// src/rserpool-csp.h; docs/wire-format.md). Like asap and enrp the package
// does no I/O and reads no clock: the caller supplies times and sends the
// bytes.
//
// # Wire format
//
// All fields are in network byte order; a report is 288 bytes plus 24 per
// association:
//
//	offset size field
//	0      1    Type = 0x01 (component status report)
//	1      1    Flags: 0x01 = final report
//	2      2    Length of the whole datagram
//	4      4    Version = 0x00000200
//	8      8    Sender ID: bits 63..56 the group (1 registrar, 2 PE, 3 PU), bits 55..0 the object
//	16     8    Sender time stamp, µs since the reporter started
//	24     4    Report interval, µs
//	28   128    Location, ASCII, NUL-padded
//	156  128    Status text, ASCII, NUL-padded
//	284    2    Workload: round(w × 0xFFFE), 0xFFFF = unknown
//	286    2    Number of association entries
//	288  24×n   Associations: receiver ID (8, same encoding as the sender ID),
//	            duration µs (8, all ones = unknown), flags (2), protocol (2,
//	            132 SCTP, 6 TCP), PPID (4)
//
// cspmonitor accepts a report only when its type is 1, its version 0x0200
// and its size exactly 288 + 24 × associations; it shows at most 127
// bytes of location and status text, so Append refuses longer ones.
package csp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Constants of the protocol.
const (
	Port       = 2960   // cspmonitor's UDP port
	Version    = 0x0200 // the only version
	TypeReport = 0x01   // component status report, the only message type
	FlagFinal  = 0x01   // the reporter stops

	HeaderSize      = 288 // a report without associations
	AssociationSize = 24
	TextSize        = 128 // location and status fields; at most TextSize-1 bytes of text

	// WorkloadUnknown is the workload of a component that has none.
	WorkloadUnknown = 0xFFFF
	// DurationUnknown is the duration of an association of unknown age.
	DurationUnknown = math.MaxUint64

	// MaxAssociations is the most associations one datagram can list (its
	// length is a 16-bit field).
	MaxAssociations = (0xFFFF - HeaderSize) / AssociationSize
)

// Group is the kind of component an ID names (its top 8 bits).
//
// WARNING: only append; the values are part of the protocol.
type Group uint8

const (
	GroupRegistrar   Group = 1
	GroupPoolElement Group = 2
	GroupPoolUser    Group = 3
)

// ID builds a component ID from a group and an object number (its low 56
// bits are kept).
func ID(g Group, object uint64) uint64 { return uint64(g)<<56 | object&(1<<56-1) }

// GroupOf returns the group of a component ID.
func GroupOf(id uint64) Group { return Group(id >> 56) }

// ObjectOf returns the object number of a component ID.
func ObjectOf(id uint64) uint64 { return id & (1<<56 - 1) }

// Association is one association a component reports: with a registrar,
// a peer registrar or a PE.
type Association struct {
	Receiver uint64 `json:"receiver"` // component ID of the other end
	Duration uint64 `json:"duration"` // µs since it was set up; DurationUnknown
	Flags    uint16 `json:"flags"`
	Protocol uint16 `json:"protocol"` // IP protocol number: 132 SCTP, 6 TCP
	PPID     uint32 `json:"ppid"`     // 11 ASAP, 12 ENRP, 0 data
}

// Report is a component status report.
type Report struct {
	Final    bool   `json:"final"`
	Sender   uint64 `json:"sender"`   // component ID (ID)
	Time     uint64 `json:"time"`     // µs since the reporter started
	Interval uint32 `json:"interval"` // report interval, µs
	Location string `json:"location"` // RSPLIB: "host: address, address"
	Status   string `json:"status"`   // e.g. "3[1] PEs in 2 Pools, 1 Peer"
	// Workload is round(w × 0xFFFE) for a load w in [0, 1], or
	// WorkloadUnknown; see Workload.
	Workload     uint16        `json:"workload"`
	Associations []Association `json:"associations,omitempty"`
}

// Workload encodes a load between 0 and 1 (clamped); a negative one is
// unknown, as RSPLIB's CSR_SET_WORKLOAD.
func Workload(w float64) uint16 {
	switch {
	case w < 0 || math.IsNaN(w):
		return WorkloadUnknown
	case w > 1:
		w = 1
	}
	return uint16(math.RoundToEven(w * 0xFFFE))
}

// Errors of Parse and Append. Each is wrapped with the field it concerns.
var (
	ErrTruncated   = errors.New("csp: truncated")
	ErrBadLength   = errors.New("csp: bad length")
	ErrBadType     = errors.New("csp: not a component status report")
	ErrBadVersion  = errors.New("csp: unsupported version")
	ErrInvalidText = errors.New("csp: invalid text")
	ErrTooMany     = errors.New("csp: too many associations")
)

// Append encodes r after b. It refuses (naming the field) a location or
// status text over TextSize-1 bytes or with a NUL byte, and more than
// MaxAssociations associations.
func Append(b []byte, r *Report) ([]byte, error) {
	if len(r.Associations) > MaxAssociations {
		return b, fmt.Errorf("associations: %w: %d, at most %d", ErrTooMany, len(r.Associations), MaxAssociations)
	}
	for _, f := range []struct{ name, v string }{{"location", r.Location}, {"status", r.Status}} {
		if len(f.v) > TextSize-1 {
			return b, fmt.Errorf("%s: %w: %d bytes, at most %d", f.name, ErrInvalidText, len(f.v), TextSize-1)
		}
		if strings.IndexByte(f.v, 0) >= 0 {
			return b, fmt.Errorf("%s: %w: contains a NUL byte", f.name, ErrInvalidText)
		}
	}
	var flags uint8
	if r.Final {
		flags = FlagFinal
	}
	length := HeaderSize + AssociationSize*len(r.Associations)
	b = append(b, TypeReport, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(length))
	b = binary.BigEndian.AppendUint32(b, Version)
	b = binary.BigEndian.AppendUint64(b, r.Sender)
	b = binary.BigEndian.AppendUint64(b, r.Time)
	b = binary.BigEndian.AppendUint32(b, r.Interval)
	b = appendText(b, r.Location)
	b = appendText(b, r.Status)
	b = binary.BigEndian.AppendUint16(b, r.Workload)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Associations)))
	for _, a := range r.Associations {
		b = binary.BigEndian.AppendUint64(b, a.Receiver)
		b = binary.BigEndian.AppendUint64(b, a.Duration)
		b = binary.BigEndian.AppendUint16(b, a.Flags)
		b = binary.BigEndian.AppendUint16(b, a.Protocol)
		b = binary.BigEndian.AppendUint32(b, a.PPID)
	}
	return b, nil
}

func appendText(b []byte, s string) []byte {
	b = append(b, s...)
	return append(b, make([]byte, TextSize-len(s))...)
}

// Parse decodes one report, as cspmonitor checks it: type 1, version
// 0x0200, the length field and the datagram's size both 288 + 24 × the
// association count. Text ends at its first NUL (or at TextSize bytes).
func Parse(b []byte) (*Report, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("report: %w: %d bytes, at least %d", ErrTruncated, len(b), HeaderSize)
	}
	if b[0] != TypeReport {
		return nil, fmt.Errorf("type: %w: 0x%02x", ErrBadType, b[0])
	}
	if v := binary.BigEndian.Uint32(b[4:8]); v != Version {
		return nil, fmt.Errorf("version: %w: 0x%08x, want 0x%08x", ErrBadVersion, v, Version)
	}
	n := int(binary.BigEndian.Uint16(b[286:288]))
	want := HeaderSize + AssociationSize*n
	if l := int(binary.BigEndian.Uint16(b[2:4])); l != len(b) || want != len(b) {
		return nil, fmt.Errorf("length: %w: length field %d, %d bytes, %d associations need %d", ErrBadLength, l, len(b), n, want)
	}
	r := &Report{
		Final:    b[1]&FlagFinal != 0,
		Sender:   binary.BigEndian.Uint64(b[8:16]),
		Time:     binary.BigEndian.Uint64(b[16:24]),
		Interval: binary.BigEndian.Uint32(b[24:28]),
		Location: text(b[28:156]),
		Status:   text(b[156:284]),
		Workload: binary.BigEndian.Uint16(b[284:286]),
	}
	for i := 0; i < n; i++ {
		a := b[HeaderSize+AssociationSize*i:]
		r.Associations = append(r.Associations, Association{
			Receiver: binary.BigEndian.Uint64(a[0:8]),
			Duration: binary.BigEndian.Uint64(a[8:16]),
			Flags:    binary.BigEndian.Uint16(a[16:18]),
			Protocol: binary.BigEndian.Uint16(a[18:20]),
			PPID:     binary.BigEndian.Uint32(a[20:24]),
		})
	}
	return r, nil
}

func text(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Location is a component's location as RSPLIB's reporters write it
// (getComponentLocation): the host name, ": ", the first address with the
// port (when not 0), then the other addresses, separated by ", "; "(local
// only)" when there is nothing to say. It is cut to the TextSize-1 bytes
// a report holds.
func Location(host string, addrs []netip.Addr, port uint16) string {
	var b strings.Builder
	b.WriteString(host)
	for i, a := range addrs {
		switch {
		case i > 0:
			b.WriteString(", ")
		case b.Len() > 0:
			b.WriteString(": ")
		}
		if i == 0 && port != 0 {
			b.WriteString(netip.AddrPortFrom(a.Unmap(), port).String())
		} else {
			b.WriteString(a.Unmap().String())
		}
	}
	s := b.String()
	if s == "" {
		s = "(local only)"
	}
	if len(s) > TextSize-1 {
		s = s[:TextSize-1]
	}
	return s
}

// HostPort completes a monitor address, host[:port], with the default
// port (2960): "10.0.0.1" gives "10.0.0.1:2960", "[::1]" "[::1]:2960". It
// checks the form only; resolving the host is the caller's.
func HostPort(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty address")
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		if host == "" {
			return "", fmt.Errorf("%q has no host", s)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("%q: port %q is not 1-65535", s, port)
		}
		return s, nil
	}
	host := s
	if strings.HasPrefix(s, "[") || strings.HasSuffix(s, "]") {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
			return "", fmt.Errorf("%q is not host[:port]", s)
		}
	} else if strings.Contains(s, ":") {
		if _, err := netip.ParseAddr(s); err != nil {
			return "", fmt.Errorf("%q is not host[:port]", s)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(Port)), nil
}
