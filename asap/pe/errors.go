package pe

import (
	"errors"
	"fmt"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
)

// ErrNoRegistrar is matched (errors.Is) by the error of a registration or
// deregistration that no registrar answered. The error names every
// registrar tried and why it failed.
var ErrNoRegistrar = regclient.ErrNoRegistrar

// ErrClosed is returned by an Element or Server after Close.
var ErrClosed = errors.New("pe: closed")

// RegistrationError is a registration the registrar refused (the R flag of
// ASAP_REGISTRATION_RESPONSE). Its message says what to change; Cause
// holds the Operation Error (errors.As with *asap.OperationError works
// too).
type RegistrationError struct {
	PoolHandle asap.PoolHandle
	ID         uint32
	Registrar  string // the registrar's ID (if known) and address
	Cause      *asap.OperationError
}

func (e *RegistrationError) Error() string {
	cause := "no cause given"
	if e.Cause != nil {
		cause = e.Cause.Error()
	}
	return fmt.Sprintf("registration of PE 0x%08x in pool %q refused by registrar %s: %s: %s",
		e.ID, e.PoolHandle, e.Registrar, cause, Advice(e.Cause.First()))
}

// Unwrap gives the Operation Error.
func (e *RegistrationError) Unwrap() error {
	if e.Cause == nil {
		return nil
	}
	return e.Cause
}

// Code is the first cause code (0 if none was given).
func (e *RegistrationError) Code() asap.CauseCode { return e.Cause.First() }

// Advice says what to do about a registration refused with this cause.
func Advice(c asap.CauseCode) string {
	switch c {
	case asap.CauseInconsistentPolicy:
		return "the pool's PEs use another member selection policy; register with the pool's policy, or use another pool handle"
	case asap.CauseInconsistentTransport:
		return "the pool's PEs use another transport protocol; serve over theirs (tcp or sctp), or use another pool handle"
	case asap.CauseInconsistentDataControl:
		return "the pool's PEs use another transport use (data only or data plus control); match them, or use another pool handle"
	case asap.CauseNonUniquePEIdentifier:
		return "another PE holds this identifier; choose another one (0 picks a random one)"
	case asap.CauseLackOfResources:
		return "the registrar cannot store registrations now (no quorum, or out of resources); retry later or use another registrar"
	case asap.CauseInvalidValues, asap.CauseRSPLIBInvalidValue, asap.CauseRSPLIBNoUsableUserAddress, asap.CauseRSPLIBNoUsableASAPAddress:
		return "the registrar rejected a value; check that the service's addresses are this host's addresses as the registrar sees them (registrars refuse others), that the port and lifetime are not 0, and that the policy is supported"
	case asap.CauseRSPLIBUnsupportedPolicy:
		return "the registrar does not support this policy; choose another one"
	case asap.CauseRejectedSecurity:
		return "the registrar refuses this PE for security reasons; check its access rules"
	case asap.CauseUnrecognizedParameter, asap.CauseUnrecognizedMessage, asap.CauseRSPLIBInvalidMessage:
		return "the registrar did not understand the registration; it may be an older or incompatible implementation"
	}
	return "see the registrar's log for the reason"
}
