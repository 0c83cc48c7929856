package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Forwarded writes are batched: the writes a follower's registrars make
// at the same time go to the leader in one frame and come back in one
// answer (many commands per round trip). The leader proposes them
// together (raft appends them in one batch) and answers each with its own
// result and index, so every write is applied once and its caller waits
// for its own entry here (read your writes).
//
// Frame: the 4-byte length with batchFlag set, then each command as a
// 4-byte length and its bytes; the answer is a 4-byte length and the JSON
// of forwardBatchReply. A lone write goes in the single-command frame of
// serveForward, which a leader of every version understands; a leader
// that refuses a batch frame (an older one closes the connection) gets
// the batch's writes one by one.
const (
	batchFlag = 1 << 31
	// maxForwardBatch bounds the commands of one batch.
	maxForwardBatch = 64
	// maxForwardSenders bounds the batches in flight to the leader.
	maxForwardSenders = 4
)

// forwardBatchReply is the leader's answer to a batch, in its order.
type forwardBatchReply struct {
	Replies []forwardReply `json:"replies"`
}

// forwardCall is one write waiting to be forwarded.
type forwardCall struct {
	data    []byte
	done    chan struct{} // closed when res, idx and err are set
	promote chan struct{} // closed when this call's owner is to send batches
	res     *ApplyResult
	idx     uint64
	err     error
}

// forwardBatcher queues writes for the leader. No goroutine of its own:
// up to maxForwardSenders callers at a time send batches of what is
// queued; a sender whose own write is answered leaves, and hands its turn
// to the owner of the oldest queued write if any is left.
type forwardBatcher struct {
	mu      sync.Mutex
	queue   []*forwardCall
	senders int

	batches, batched atomic.Int64 // batch frames answered, and their commands (tests)
}

// forwardBatched forwards data to the leader in a batch with the writes
// queued with it.
func (n *Node) forwardBatched(ctx context.Context, data []byte) (*ApplyResult, uint64, error) {
	b := &n.batch
	call := &forwardCall{data: data, done: make(chan struct{}), promote: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, call)
	send := b.senders < maxForwardSenders
	if send {
		b.senders++
		close(call.promote)
	}
	b.mu.Unlock()
	promote := call.promote // the owner's: nil once its turn is used
	for {
		select {
		case <-call.done:
			// Answered in another sender's batch; a turn given to it
			// while it was queued (it is not any more, so no turn can
			// come later) goes on.
			b.mu.Lock()
			if promote != nil && isClosed(promote) {
				b.handOffLocked()
			}
			b.mu.Unlock()
			return call.res, call.idx, call.err
		case <-promote:
			promote = nil
			n.sendBatches(call) // returns once call is answered, its turn passed on
		case <-ctx.Done():
			b.mu.Lock()
			b.queue = slices.DeleteFunc(b.queue, func(c *forwardCall) bool { return c == call })
			if promote != nil && isClosed(promote) {
				b.handOffLocked()
			}
			b.mu.Unlock()
			return nil, 0, ctx.Err()
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// handOffLocked ends a sender's turn: the oldest queued call's owner
// sends next, or there is one sender fewer.
func (b *forwardBatcher) handOffLocked() {
	for _, c := range b.queue {
		if !isClosed(c.promote) {
			close(c.promote)
			return
		}
	}
	b.senders--
}

// sendBatches sends batches of the queue until own is answered.
func (n *Node) sendBatches(own *forwardCall) {
	b := &n.batch
	for {
		b.mu.Lock()
		if isClosed(own.done) {
			if len(b.queue) > 0 {
				b.handOffLocked()
			} else {
				b.senders--
			}
			b.mu.Unlock()
			return
		}
		k := min(len(b.queue), maxForwardBatch)
		batch := slices.Clone(b.queue[:k])
		b.queue = slices.Delete(b.queue, 0, k)
		b.mu.Unlock()
		if len(batch) == 0 {
			// own was taken by another sender's batch: wait for it, then
			// hand the turn on.
			<-own.done
			continue
		}
		n.forwardBatch(batch)
	}
}

// forwardBatch sends calls to the leader and answers each of them.
func (n *Node) forwardBatch(calls []*forwardCall) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Raft.ApplyTimeout+5*time.Second)
	defer cancel()
	finish := func(c *forwardCall, res *ApplyResult, idx uint64, err error) {
		c.res, c.idx, c.err = res, idx, err
		close(c.done)
	}
	if len(calls) == 1 {
		res, idx, err := n.forwardToLeader(ctx, calls[0].data)
		finish(calls[0], res, idx, err)
		return
	}
	reps, err := n.sendBatch(ctx, calls)
	if err != nil || len(reps) != len(calls) {
		// Not answered as a batch (a leader that does not know batches,
		// or a connection that failed): one by one.
		for _, c := range calls {
			res, idx, err := n.forwardToLeader(ctx, c.data)
			finish(c, res, idx, err)
		}
		return
	}
	n.batch.batches.Add(1)
	n.batch.batched.Add(int64(len(calls)))
	for i, c := range calls {
		res, idx, err := decodeForwardReply(reps[i])
		finish(c, res, idx, err)
	}
}

// sendBatch sends one batch frame and reads the answer.
func (n *Node) sendBatch(ctx context.Context, calls []*forwardCall) ([]forwardReply, error) {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return nil, ErrNoLeader
	}
	c, err := n.fwd.get(string(addr))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if ok {
			n.fwd.put(string(addr), c)
		} else {
			c.Close()
		}
	}()
	size := 0
	for _, call := range calls {
		size += 4 + len(call.data)
	}
	msg := make([]byte, 4, 4+size)
	binary.BigEndian.PutUint32(msg, uint32(size)|batchFlag)
	for _, call := range calls {
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(call.data)))
		msg = append(msg, call.data...)
	}
	if d, has := ctx.Deadline(); has {
		c.SetDeadline(d)
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	var rep forwardBatchReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("bad batch reply: %v", err)
	}
	ok = true
	return rep.Replies, nil
}

// serveBatch answers a batch frame of size bytes from r on c: every
// command is proposed at once (raft appends them together) and the
// answers go back in one reply.
func (n *Node) serveBatch(c net.Conn, r *bufio.Reader, size uint32) error {
	if size > 16<<20 {
		return fmt.Errorf("forwarded batch of %d bytes", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	var cmds [][]byte
	for len(body) > 0 {
		if len(body) < 4 || int(binary.BigEndian.Uint32(body)) > len(body)-4 || len(cmds) == maxForwardBatch {
			return fmt.Errorf("malformed forwarded batch")
		}
		k := binary.BigEndian.Uint32(body)
		cmds = append(cmds, body[4:4+k])
		body = body[4+k:]
	}
	reps := make([]forwardReply, len(cmds))
	var wg sync.WaitGroup
	for i, data := range cmds {
		wg.Add(1)
		go func() { // ends when raft answers the proposal (bounded by the apply timeout)
			defer wg.Done()
			reps[i] = n.applyForwarded(data)
		}()
	}
	wg.Wait()
	out, _ := json.Marshal(forwardBatchReply{Replies: reps})
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(out))), out...))
	return err
}
