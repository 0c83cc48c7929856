package transport

import (
	"context"
	"time"
)

// ioDeadline keeps the read or write deadline of one socket in step with a
// context and a timeout. Only the goroutine doing that I/O uses it (the one
// holding the Recv or Send semaphore).
type ioDeadline struct {
	set func(time.Time) error // SetReadDeadline or SetWriteDeadline
	cur time.Time             // deadline currently set
}

// arm sets the deadline to the earlier of timeout (zero: none) and ctx's
// deadline, and makes a cancelled ctx interrupt the I/O at once. Call the
// returned disarm after the I/O; it waits for a cancellation in progress.
func (d *ioDeadline) arm(ctx context.Context, timeout time.Time) (disarm func()) {
	dl := timeout
	if cd, ok := ctx.Deadline(); ok && (dl.IsZero() || cd.Before(dl)) {
		dl = cd
	}
	if !dl.Equal(d.cur) && !d.farEnough(dl) {
		_ = d.set(dl)
		d.cur = dl
	}
	if ctx.Done() == nil {
		return func() {}
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = d.set(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
			d.cur = aLongTimeAgo
		}
	}
}

// stale records that the deadline on the socket is not the one d last
// set (an I/O call failed on a deadline that neither the timeout nor ctx
// explains): the next arm sets the deadline again whatever it is, so a
// retry cannot fail on the same deadline forever.
func (d *ioDeadline) stale() { d.cur = aLongTimeAgo }

// farEnough reports that the deadline already set may stay although dl
// is later: it is still at least half of dl's remaining time away, and
// that remaining time is over a second (an idle or write timeout, not a
// caller's short deadline). Moving it on every I/O call would cost a
// timer update per message; when it expires early, expired reports it
// stale and the caller re-arms it.
func (d *ioDeadline) farEnough(dl time.Time) bool {
	if d.cur.IsZero() || dl.IsZero() || dl.Before(d.cur) {
		return false
	}
	now := time.Now()
	remaining := dl.Sub(now)
	return remaining > time.Second && d.cur.Sub(now) > remaining/2
}

// expired tells which deadline ended an I/O call that failed with
// os.ErrDeadlineExceeded: timedOut when timeout (non-zero) has passed;
// otherwise ctxErr is ctx.Err() (or DeadlineExceeded when ctx's deadline
// passed but ctx has not noticed yet). Both false/nil: a stale deadline,
// retry.
func expired(ctx context.Context, timeout time.Time) (timedOut bool, ctxErr error) {
	now := time.Now()
	if !timeout.IsZero() && !now.Before(timeout) {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if cd, ok := ctx.Deadline(); ok && !now.Before(cd) {
		return false, context.DeadlineExceeded
	}
	return false, nil
}

// noTimeout is the zero timeout: only ctx bounds the I/O.
var noTimeout time.Time
