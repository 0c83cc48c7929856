// Package transport carries ASAP (RFC 5352) and ENRP (RFC 5353) messages,
// and application data of pool elements, over SCTP, TCP, UDP multicast and
// an in-memory pipe.
//
// Everything above it (the registrar, the PE and PU libraries) sees a Conn:
// Send and Recv move whole messages, each labelled with its SCTP payload
// protocol identifier (PPID): PPIDASAP (11) or PPIDENRP (12), or any other
// value for application data. Handlers take a Conn, never a socket type, so
// they run unchanged over Pipe and MemNetwork in tests.
//
// # Address specs
//
//	[tcp:|sctp:|auto:]host[,host...]:port
//
// IPv6 literals go in brackets ("[::1]:3863"). Several hosts are the local
// addresses of a multi-homed SCTP endpoint ("sctp:10.0.0.1,10.0.0.2:3863",
// "[::1],127.0.0.1:3863"); TCP listens on each of them. An empty host
// (":3863") is the wildcard address. Port 0 picks a free port, which
// Listener.Addrs reports. Listeners and connections describe where they
// are with an Endpoint (kind, addresses, port), whatever the transport;
// Endpoint.Spec is the spec that dials it. Without a prefix the spec is
// auto:
//
//   - Listen binds TCP first, then SCTP on the same port, and one Listener
//     returns the connections of both.
//   - Dial tries SCTP for at most Config.SCTPAttemptTimeout, then TCP.
//   - On a kernel without SCTP (socket(2) fails with EPROTONOSUPPORT) auto
//     uses TCP only and logs that once per process; an explicit sctp: spec
//     fails with ErrNoSCTP.
//
// # SCTP
//
// One-to-one sockets (github.com/ishidawataru/sctp for sctp_bindx,
// sctp_connectx and the option layouts; pure Go, builds with CGO_ENABLED=0).
// Each message is one SCTP user message sent with its PPID in an
// sctp_sndrcvinfo; on receipt the PPID comes from the same structure
// (SCTP_EVENTS data I/O subscription) and pieces of a partially delivered
// message are collected until MSG_EOR. PeerAddrs asks the kernel for every
// peer address of the association (SCTP_GET_PEER_ADDRS). The sockets are
// non-blocking and served by the Go runtime's poller, so deadlines, context
// cancellation and Close work as for net.Conn.
//
// # TCP framing
//
// TCP carries messages back to back with no extra framing: every ASAP and
// ENRP message starts with type(8) flags(8) length(16), the length covering
// the whole message including header and padding (RFC 5352 section 2.2, RFC
// 5353 section 2.1). Recv reads the length at offset 2 and reassembles split
// and coalesced messages. A length below 4 or above Config.MaxMessageSize
// closes the connection (ErrBadFrame, ErrMessageTooLarge, with a log line
// naming the reason). Send checks that a message's length field matches its
// size, as a wrong one would desynchronise the peer. Plain TCP cannot carry a
// PPID: a connection labels everything with Config.PPID (PPIDASAP on the
// ASAP port, PPIDENRP on the ENRP port) and Send accepts only that PPID.
//
// Sends are queued (at most 64 KiB beyond the batch in flight) and written in
// batches by one writer goroutine per connection, so a busy connection costs
// one write(2) per batch rather than per message.
//
// # Mux framing (data plus control)
//
// A PE's data channel carries application data and ASAP control messages
// (COOKIE, COOKIE_ECHO, BUSINESS_CARD, ERROR) on one connection ("transport
// use: data plus control", RFC 5352/5354). Over SCTP the PPID tells them
// apart. Over TCP, Config.Mux selects this framing on both ends:
//
//   - an ASAP message (PPID 11) is sent raw, exactly as above; its first
//     byte is its message type, 1..14;
//   - a message with any other PPID p is sent in a data frame.
//
// A data frame is an 8-byte header and the payload; length covers both,
// all fields are big-endian and the second byte is reserved (0):
//
//	0xFF 0x00 length(16) p(32) payload
//
// Recv returns PPID 11 for raw frames and p for data frames. A data payload
// can be at most 65527 bytes (and Config.MaxMessageSize).
//
// # Multicast
//
// OpenMulticast sends and receives UDP datagrams of a group: ASAP
// SERVER_ANNOUNCE on DefaultASAPAnnounce (239.0.0.50:3863) and ENRP PRESENCE
// on DefaultENRPPresence (239.0.0.51:9901), RSPLIB's defaults. The interface
// (by name), TTL and loopback are configurable; the spec "off" gives a
// Multicast that drops sends.
//
// # Tests
//
// Pipe and NewPipe return two connected in-memory Conns; NewMemNetwork is a
// Network of named in-memory listeners. Both keep the semantics above: whole
// messages, PPIDs, size limits, blocking when the peer does not read, ctx
// cancellation, Close unblocking Recv.
//
// # Concurrency and lifetime
//
// Send and Close are safe for concurrent use; Recv calls are served one at a
// time. A Recv cut short by ctx leaves the connection usable; any other Recv
// error is final and the connection is closed. Every goroutine belongs to a
// Conn or Listener and stops in its Close (or when the connection fails).
// Close is idempotent.
//
// The user guide is docs/transport.md.
package transport
