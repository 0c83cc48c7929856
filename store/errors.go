package store

import (
	"errors"
	"strconv"

	"github.com/rserpool-go/registrar/asap"
)

// Errors of the handlespace Store. Errors are wrapped with detail (the pool,
// the PE, the file), so compare with errors.Is; a refused PE's error
// (*PEError) also gives the ASAP Operation Error a registrar reports to
// the PE (errors.As to *asap.OperationError).
var (
	// ErrPoolNotFound is returned by Resolve for a pool handle that has no
	// PEs (cause Unknown Pool Handle).
	ErrPoolNotFound = errors.New("pool not found")

	// ErrPENotFound is returned in Result.Err by an OpDeregister of a PE
	// that is not registered.
	ErrPENotFound = errors.New("pool element not found")

	// ErrPolicyMismatch is returned by Check (and in Result.Err) for a PE
	// whose policy type differs from its pool's (cause Inconsistent
	// Pooling Policy).
	ErrPolicyMismatch = errors.New("inconsistent pooling policy")

	// ErrTransportMismatch is returned by Check for a PE whose user
	// transport kind (SCTP, TCP, ...) differs from its pool's (cause
	// Inconsistent Transport Type).
	ErrTransportMismatch = errors.New("inconsistent transport type")

	// ErrDataControlMismatch is returned by Check for a PE whose transport
	// use (data only, data plus control) differs from its pool's (cause
	// Inconsistent Data/Control Configuration).
	ErrDataControlMismatch = errors.New("inconsistent data/control configuration")

	// ErrInvalidPE is returned by Check for a PE the store cannot hold: PE
	// identifier 0, an empty or over-long pool handle, a policy type the
	// store does not support, or a PE that cannot be encoded (cause Invalid
	// Values, with the policy parameter for the policy type and the Pool
	// Element parameter otherwise).
	ErrInvalidPE = errors.New("invalid pool element")

	// ErrInvalidOp is returned in Result.Err for an Op that makes no sense
	// (an unknown kind, OpReassign without targets).
	ErrInvalidOp = errors.New("invalid operation")

	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("handlespace store is closed")

	// ErrCorrupt is returned by Open (and a ReadView's ForEach) when the
	// file is not a handlespace database or holds a value that does not
	// decode. The file is left unchanged and the error names it.
	ErrCorrupt = errors.New("corrupt handlespace database")

	// ErrLocked is returned by Open when another process (or another open
	// Store) holds the file for longer than Options.Timeout.
	ErrLocked = errors.New("handlespace database is locked by another process")

	// ErrVersion is returned by Open for a file written in a newer format
	// version than this build reads.
	ErrVersion = errors.New("unsupported handlespace format version")

	// ErrNoFile is returned by View and BeginView of a store opened with
	// OpenMemory.
	ErrNoFile = errors.New("in-memory handlespace store has no file")
)

// PEError is the error of a PE that Check (and Apply) refuses. It wraps
// one of the sentinels above and carries the ASAP Operation Error a
// registrar answers with: the one place that decides the cause. errors.As
// finds it as a *asap.OperationError:
//
//	var oe *asap.OperationError
//	if errors.As(err, &oe) { resp.Error = oe }
type PEError struct {
	Handle asap.PoolHandle
	ID     uint32
	Err    error  // ErrPolicyMismatch, ErrTransportMismatch, ErrDataControlMismatch or ErrInvalidPE
	Detail string // human-readable detail, e.g. "pool uses rr, PE has lu"
	Cause  asap.CauseCode
	// Info is the cause information: the offending parameter (policy or
	// transport) for the causes that carry one, else nil.
	Info []byte
}

// Error names the pool, the PE and the reason.
func (e *PEError) Error() string {
	h, _ := e.Handle.MarshalText()
	s := "store: pool " + strconv.Quote(string(h)) + " PE 0x" + strconv.FormatUint(uint64(e.ID), 16) + ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap gives the sentinel.
func (e *PEError) Unwrap() error { return e.Err }

// OperationError builds the Operation Error parameter to send back.
func (e *PEError) OperationError() *asap.OperationError {
	return asap.NewOperationError(e.Cause, e.Info)
}

// As makes errors.As(err, &oe) with oe a *asap.OperationError give the
// Operation Error of the refusal.
func (e *PEError) As(target any) bool {
	if oe, ok := target.(**asap.OperationError); ok {
		*oe = e.OperationError()
		return true
	}
	return false
}

// peErr builds the refusal of pe. A cause that must carry the offending
// parameter (asap.CauseCode.NeedsInfo) and has none given gets the Pool
// Element parameter (none if the element cannot be encoded).
func peErr(pe *PE, base error, cause asap.CauseCode, detail string, info []byte) *PEError {
	if info == nil && cause.NeedsInfo() {
		if enc, err := asap.AppendPoolElement(nil, &pe.Element); err == nil {
			info = enc
		}
	}
	return &PEError{Handle: pe.Handle, ID: pe.Element.ID, Err: base, Detail: detail, Cause: cause, Info: info}
}

// poolError wraps a sentinel with the pool handle.
type poolError struct {
	handle asap.PoolHandle
	id     uint32
	hasID  bool
	err    error
}

func (e *poolError) Error() string {
	h, _ := e.handle.MarshalText()
	s := "store: pool " + strconv.Quote(string(h))
	if e.hasID {
		s += " PE 0x" + strconv.FormatUint(uint64(e.id), 16)
	}
	return s + ": " + e.err.Error()
}

func (e *poolError) Unwrap() error { return e.err }
