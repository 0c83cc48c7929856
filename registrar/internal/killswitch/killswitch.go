// Package killswitch lets package registrartest stop an in-process
// registrar the way a killed process stops, without the registrar
// exporting a way to do it: a Run whose context is canceled with Cause
// as its cause (context.WithCancelCause) abandons everything at once
// instead of shutting down in order (see registrar.Run).
package killswitch

import "errors"

// Cause is the cancellation cause that kills a running registrar.
var Cause = errors.New("registrar killed")
