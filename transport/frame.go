package transport

import (
	"encoding/binary"
	"fmt"
)

// muxDataType is the first byte of a mux data frame. ASAP message types are
// 1..14 (RFC 5352 section 2.2), so a raw ASAP message never starts with it.
const muxDataType = 0xFF

// frameInfo describes how Send puts one message on a TCP stream.
type frameInfo struct {
	header bool   // true: an 8-byte mux data frame header precedes msg
	ppid   uint32 // PPID of a mux data frame
}

// checkSend validates a message for a TCP stream and tells how to frame it.
//
// Plain mode: msg is an ASAP/ENRP message that carries its own length at
// offset 2 (RFC 5352 section 2.2, RFC 5353 section 2.1); it must match
// len(msg) or the peer would lose the message boundaries. ppid must be the
// connection's PPID.
//
// Mux mode: ppid 11 sends msg raw as in plain mode (its first byte, the
// message type, must not be 0xFF); any other ppid sends a data frame
// `0xFF 0x00 len16 ppid32 payload`, len16 covering the 8-byte header too.
func checkSend(ppid uint32, msg []byte, connPPID uint32, mux bool, max int) (frameInfo, error) {
	if len(msg) == 0 {
		return frameInfo{}, fmt.Errorf("%w: empty message", ErrBadFrame)
	}
	if len(msg) > max {
		return frameInfo{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(msg), max)
	}
	if mux && ppid != PPIDASAP {
		if len(msg)+muxHeaderSize > MaxFrameSize {
			return frameInfo{}, fmt.Errorf("%w: %d bytes plus the %d-byte mux header exceed %d", ErrMessageTooLarge, len(msg), muxHeaderSize, MaxFrameSize)
		}
		return frameInfo{header: true, ppid: ppid}, nil
	}
	if !mux && ppid != connPPID {
		return frameInfo{}, fmt.Errorf("%w: ppid %d on a tcp connection for ppid %d (set Config.Mux to carry data and ASAP together)", ErrBadPPID, ppid, connPPID)
	}
	if len(msg) < 4 {
		return frameInfo{}, fmt.Errorf("%w: %d-byte message is shorter than the 4-byte ASAP/ENRP header", ErrBadFrame, len(msg))
	}
	if l := int(binary.BigEndian.Uint16(msg[2:4])); l != len(msg) {
		return frameInfo{}, fmt.Errorf("%w: header length %d does not match the %d-byte message", ErrBadFrame, l, len(msg))
	}
	if mux && msg[0] == muxDataType {
		return frameInfo{}, fmt.Errorf("%w: message type 0xff is reserved for mux data frames", ErrBadFrame)
	}
	return frameInfo{}, nil
}

// appendFrame appends msg, framed as fi says, to b.
func appendFrame(b []byte, fi frameInfo, msg []byte) []byte {
	if fi.header {
		b = append(b, muxDataType, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(msg)+muxHeaderSize))
		b = binary.BigEndian.AppendUint32(b, fi.ppid)
	}
	return append(b, msg...)
}

// frameHeader is the parsed start of a frame in a receive buffer.
type frameHeader struct {
	total int    // bytes of the whole frame on the wire
	skip  int    // header bytes that are not part of the message
	ppid  uint32 // PPID to report
}

// parseFrame inspects the start of b. It returns ok=false when b holds too
// few bytes to decide, and an error (ErrBadFrame, ErrMessageTooLarge) for a
// frame that must not be accepted.
func parseFrame(b []byte, connPPID uint32, mux bool, max int) (h frameHeader, ok bool, err error) {
	if len(b) < 4 {
		return h, false, nil
	}
	length := int(binary.BigEndian.Uint16(b[2:4]))
	if mux && b[0] == muxDataType {
		if b[1] != 0 {
			return h, false, fmt.Errorf("%w: mux data frame reserved byte is %#02x, want 0", ErrBadFrame, b[1])
		}
		if length < muxHeaderSize {
			return h, false, fmt.Errorf("%w: mux data frame length %d is below its %d-byte header", ErrBadFrame, length, muxHeaderSize)
		}
		if length-muxHeaderSize > max {
			return h, false, fmt.Errorf("%w: mux data frame payload of %d bytes, limit %d", ErrMessageTooLarge, length-muxHeaderSize, max)
		}
		if len(b) < muxHeaderSize {
			return h, false, nil
		}
		return frameHeader{total: length, skip: muxHeaderSize, ppid: binary.BigEndian.Uint32(b[4:8])}, true, nil
	}
	if length < 4 {
		return h, false, fmt.Errorf("%w: message length %d is below the 4-byte header (type %d)", ErrBadFrame, length, b[0])
	}
	if length > max {
		return h, false, fmt.Errorf("%w: message length %d, limit %d (type %d)", ErrMessageTooLarge, length, max, b[0])
	}
	ppid := connPPID
	if mux {
		ppid = PPIDASAP
	}
	return frameHeader{total: length, ppid: ppid}, true, nil
}
