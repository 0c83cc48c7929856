package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
)

// CommandVersion is the version of the raft command envelope.
const CommandVersion = 1

// Kind says what a committed command does.
//
// WARNING: only append to this list. The values are stored in raft logs.
type Kind uint8

const (
	// KindUpdate carries an ENRP_HANDLE_UPDATE: ADD_PE registers (or
	// updates) the PE with the Pool Element's Home as its owner; DEL_PE
	// removes it.
	KindUpdate Kind = 1
	// KindTakeover carries an ENRP_TAKEOVER_SERVER: the PEs owned by
	// Target get new homes among Owners (the live registrars), spread
	// evenly and deterministically.
	KindTakeover Kind = 2
	// KindDropOwner carries an ENRP_TAKEOVER_SERVER whose Target's PEs are
	// removed (a foreign registrar's PEs after it left, or before a full
	// resync of its table).
	KindDropOwner Kind = 3
	// KindReset removes every PE (the first step of an online restore).
	KindReset Kind = 4
	// KindBatch carries several ENRP_HANDLE_UPDATEs applied together (a
	// foreign peer's handle table, a restore).
	KindBatch Kind = 5
	// KindRemove carries an ENRP_HANDLE_UPDATE with DEL_PE, as KindUpdate
	// does, and why this registrar removes the PE (Command.Reason), so
	// that every registrar's change stream can say it.
	KindRemove Kind = 6
)

// RemoveReason says why a PE was removed (KindRemove).
//
// WARNING: only append to this list. The values are stored in raft logs.
type RemoveReason uint8

const (
	// ReasonDeregistered: the PE deregistered (or its home registrar,
	// another ENRP server, said it is gone).
	ReasonDeregistered RemoveReason = 1
	// ReasonKeepAlive: the PE did not answer a keep-alive in time.
	ReasonKeepAlive RemoveReason = 2
	// ReasonLifetime: a foreign PE's registration life ran out without
	// a refresh.
	ReasonLifetime RemoveReason = 3
	// ReasonUnreachable: pool users reported the PE unreachable.
	ReasonUnreachable RemoveReason = 4
	// ReasonTakeover: the PE's home registrar went away and its PEs were
	// dropped (KindDropOwner; not in a KindRemove command).
	ReasonTakeover RemoveReason = 5
)

func (r RemoveReason) String() string {
	switch r {
	case ReasonDeregistered:
		return "deregistered"
	case ReasonKeepAlive:
		return "keep-alive-timeout"
	case ReasonLifetime:
		return "lifetime"
	case ReasonUnreachable:
		return "unreachable"
	case ReasonTakeover:
		return "takeover"
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

func (k Kind) String() string {
	switch k {
	case KindUpdate:
		return "update"
	case KindTakeover:
		return "takeover"
	case KindDropOwner:
		return "drop-owner"
	case KindReset:
		return "reset"
	case KindBatch:
		return "batch"
	case KindRemove:
		return "remove"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Command is one change of the handlespace as it travels through raft: an
// ENRP message in its RFC wire encoding inside a small envelope.
//
// Envelope layout (big-endian):
//
//	0      1 byte   version (1)
//	1      1 byte   kind
//	2      8 bytes  time, unix nanoseconds (the FSM never reads the clock)
//	10     ...      kind-specific body:
//	  update:     one ENRP_HANDLE_UPDATE
//	  takeover:   one ENRP_TAKEOVER_SERVER, then the new owners as 32-bit IDs
//	  drop-owner: one ENRP_TAKEOVER_SERVER
//	  reset:      nothing
//	  batch:      ENRP_HANDLE_UPDATEs back to back
//	  remove:     1 byte reason, then one ENRP_HANDLE_UPDATE (DEL_PE)
type Command struct {
	Kind    Kind
	Time    time.Time
	Updates []*enrp.HandleUpdate // update, remove (exactly one), batch
	Target  *enrp.TakeoverServer // takeover, drop-owner
	Owners  []uint32             // takeover
	Reason  RemoveReason         // remove
}

const envelopeHeader = 10

// ErrBadCommand wraps every command decoding error.
var ErrBadCommand = errors.New("bad raft command")

// NewUpdate builds an update command.
func NewUpdate(t time.Time, action enrp.UpdateAction, sender uint32, h asap.PoolHandle, pe asap.PoolElement) Command {
	return Command{Kind: KindUpdate, Time: t, Updates: []*enrp.HandleUpdate{{
		Header: enrp.Header{Sender: sender}, Action: action, PoolHandle: h, PoolElement: pe,
	}}}
}

// NewRemove builds the removal of pe from pool h, for reason.
func NewRemove(t time.Time, reason RemoveReason, sender uint32, h asap.PoolHandle, pe asap.PoolElement) Command {
	c := NewUpdate(t, enrp.DelPE, sender, h, pe)
	c.Kind, c.Reason = KindRemove, reason
	return c
}

// NewTakeover builds a takeover of target's PEs by owners.
func NewTakeover(t time.Time, sender, target uint32, owners []uint32) Command {
	return Command{Kind: KindTakeover, Time: t, Target: enrp.NewTakeoverServer(sender, 0, target), Owners: owners}
}

// Marshal encodes the command envelope.
func (c *Command) Marshal() ([]byte, error) {
	b := make([]byte, envelopeHeader, 128)
	b[0] = CommandVersion
	b[1] = byte(c.Kind)
	binary.BigEndian.PutUint64(b[2:], uint64(c.Time.UnixNano()))
	var err error
	switch c.Kind {
	case KindUpdate, KindBatch, KindRemove:
		if c.Kind != KindBatch && len(c.Updates) != 1 {
			return nil, fmt.Errorf("%w: %v command with %d updates", ErrBadCommand, c.Kind, len(c.Updates))
		}
		if c.Kind == KindRemove {
			if c.Reason == 0 || c.Updates[0].Action != enrp.DelPE {
				return nil, fmt.Errorf("%w: remove command needs a reason and DEL_PE", ErrBadCommand)
			}
			b = append(b, byte(c.Reason))
		}
		for _, u := range c.Updates {
			if b, err = enrp.Append(b, u); err != nil {
				return nil, err
			}
		}
	case KindTakeover, KindDropOwner:
		if c.Target == nil {
			return nil, fmt.Errorf("%w: %v command without target", ErrBadCommand, c.Kind)
		}
		if b, err = enrp.Append(b, c.Target); err != nil {
			return nil, err
		}
		if c.Kind == KindTakeover {
			if len(c.Owners) == 0 {
				return nil, fmt.Errorf("%w: takeover without new owners", ErrBadCommand)
			}
			for _, o := range c.Owners {
				b = binary.BigEndian.AppendUint32(b, o)
			}
		}
	case KindReset:
	default:
		return nil, fmt.Errorf("%w: unknown kind %v", ErrBadCommand, c.Kind)
	}
	return b, nil
}

// UnmarshalCommand decodes a command envelope.
func UnmarshalCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < envelopeHeader {
		return c, fmt.Errorf("%w: %d bytes, envelope needs %d", ErrBadCommand, len(b), envelopeHeader)
	}
	if b[0] != CommandVersion {
		return c, fmt.Errorf("%w: envelope version %d, this registrar knows %d", ErrBadCommand, b[0], CommandVersion)
	}
	c.Kind = Kind(b[1])
	c.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[2:])))
	body := b[envelopeHeader:]
	next := func() (enrp.Message, error) {
		one, rest, err := enrp.SplitMessage(body)
		if err != nil {
			return nil, fmt.Errorf("%w: truncated ENRP message: %v", ErrBadCommand, err)
		}
		m, _, err := enrp.Unpack(one, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
		}
		body = rest
		return m, nil
	}
	switch c.Kind {
	case KindUpdate, KindBatch, KindRemove:
		if c.Kind == KindRemove {
			if len(body) == 0 || body[0] == 0 {
				return c, fmt.Errorf("%w: remove command without a reason", ErrBadCommand)
			}
			c.Reason, body = RemoveReason(body[0]), body[1:]
		}
		for len(body) > 0 {
			m, err := next()
			if err != nil {
				return c, err
			}
			u, ok := m.(*enrp.HandleUpdate)
			if !ok {
				return c, fmt.Errorf("%w: %v command holds %v", ErrBadCommand, c.Kind, m.Type())
			}
			c.Updates = append(c.Updates, u)
		}
		if c.Kind != KindBatch && len(c.Updates) != 1 {
			return c, fmt.Errorf("%w: %v command with %d updates", ErrBadCommand, c.Kind, len(c.Updates))
		}
		if c.Kind == KindRemove && c.Updates[0].Action != enrp.DelPE {
			return c, fmt.Errorf("%w: remove command holds %v", ErrBadCommand, c.Updates[0].Action)
		}
	case KindTakeover, KindDropOwner:
		m, err := next()
		if err != nil {
			return c, err
		}
		t, ok := m.(*enrp.TakeoverServer)
		if !ok {
			return c, fmt.Errorf("%w: %v command holds %v", ErrBadCommand, c.Kind, m.Type())
		}
		c.Target = t
		if c.Kind == KindTakeover {
			if len(body) == 0 || len(body)%4 != 0 {
				return c, fmt.Errorf("%w: takeover owner list of %d bytes", ErrBadCommand, len(body))
			}
			for ; len(body) > 0; body = body[4:] {
				c.Owners = append(c.Owners, binary.BigEndian.Uint32(body))
			}
		} else if len(body) != 0 {
			return c, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(body))
		}
	case KindReset:
		if len(body) != 0 {
			return c, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(body))
		}
	default:
		return c, fmt.Errorf("%w: unknown kind %d", ErrBadCommand, b[1])
	}
	return c, nil
}

// Ops turns the command into store operations. It is deterministic: the
// time comes from the envelope.
func (c *Command) Ops() []store.Op {
	ns := c.Time.UnixNano()
	switch c.Kind {
	case KindUpdate, KindBatch, KindRemove:
		ops := make([]store.Op, 0, len(c.Updates))
		for _, u := range c.Updates {
			op := store.Op{Kind: store.OpRegister, PE: store.PE{Handle: u.PoolHandle, Element: u.PoolElement, Registered: ns}}
			if u.Action == enrp.DelPE {
				op.Kind = store.OpDeregister
			}
			ops = append(ops, op)
		}
		return ops
	case KindTakeover:
		return []store.Op{{Kind: store.OpReassign, From: c.Target.Target, To: c.Owners}}
	case KindDropOwner:
		return []store.Op{{Kind: store.OpDeleteOwner, From: c.Target.Target}}
	case KindReset:
		return []store.Op{{Kind: store.OpReset}}
	}
	return nil
}
