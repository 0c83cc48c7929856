package registrar

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rserpool-go/registrar/asap"
)

// HeaderIndex is the raft index an answer of the admin API reflects (as
// Consul's X-Consul-Index): for GET /v1/pools/{handle} the index of the
// pool's last change, for GET /v1/pools the last change this registrar
// applied. Pass it as ?index= to wait for a newer state or to watch from
// there.
const HeaderIndex = "X-Registrar-Index"

// Long-poll limits (GET /v1/pools/{handle}?index=N&wait=D).
const (
	defaultPollWait = 5 * time.Minute
	maxPollWait     = 10 * time.Minute
)

// watchQuery is the parsed query of a watch or long-poll request.
type watchQuery struct {
	index  uint64
	resume bool // index was given
	wait   time.Duration
	pool   asap.PoolHandle
}

// parseWatchQuery reads index and wait, and for a watch (not a
// long-poll) pool and Last-Event-ID; the error names the parameter.
func parseWatchQuery(req *http.Request, watch bool) (watchQuery, error) {
	q := req.URL.Query()
	var wq watchQuery
	if s := q.Get("index"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return wq, fmt.Errorf("index %q: want a raft index (a decimal number)", s)
		}
		wq.index, wq.resume = v, true
	}
	if s := req.Header.Get("Last-Event-ID"); s != "" && watch {
		// An EventSource reconnecting (to the URL it was opened with)
		// resumes where it was, after the index in its URL.
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return wq, fmt.Errorf("Last-Event-ID %q: want a raft index", s)
		}
		wq.index, wq.resume = v, true
	}
	wq.wait = defaultPollWait
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return wq, fmt.Errorf("wait %q: want a duration such as 30s", s)
		}
		wq.wait = min(d, maxPollWait)
	}
	if s := q.Get("pool"); s != "" && watch {
		if err := wq.pool.UnmarshalText([]byte(s)); err != nil || wq.pool == "" {
			return wq, fmt.Errorf("pool %q: %v", s, err)
		}
	}
	return wq, nil
}

// serveWatch streams the change stream as Server-Sent Events: each event
// is one "event:" line (its type) and one "data:" line (its JSON); the
// last event of each raft index carries "id:" with that index, so an
// EventSource that reconnects resumes (Last-Event-ID) after it.
func (r *Registrar) serveWatch(w http.ResponseWriter, req *http.Request) {
	wq, err := parseWatchQuery(req, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	rc := http.NewResponseController(w)
	cur, start, ok := r.watch.open(wq.index, wq.resume, string(wq.pool))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set(HeaderIndex, strconv.FormatUint(start, 10))
	w.WriteHeader(http.StatusOK)
	r.metrics.watchClients.Add(1)
	defer r.metrics.watchClients.Add(-1)
	send := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	end := func(reason string) {
		r.metrics.watchDropped.Inc()
		e := &WatchEvent{Index: r.watch.index(), Type: EventResync, Reason: reason, Time: time.Now().UTC()}
		_ = send(sseFrame(nil, e, false))
	}
	if !ok {
		end(fmt.Sprintf("index %d is older than the history this registrar keeps: reload and watch from the index the reload answers", wq.index))
		return
	}
	ready := false
	var buf []byte
	var evs []*WatchEvent
	for {
		var wake <-chan struct{}
		var at uint64
		evs, wake, at, err = cur.next(evs[:0])
		if errors.Is(err, errBehind) {
			end("this client fell behind the history of the change stream (it reads too slowly): reload and watch again")
			return
		}
		buf = buf[:0]
		for i, e := range evs {
			last := i+1 == len(evs) || evs[i+1].Index != e.Index || evs[i+1].local
			if e.local {
				last = false
			}
			buf = sseFrame(buf, e, last)
		}
		if !ready && len(evs) == 0 {
			// Caught up: everything up to at was sent, so its id is
			// where a client resumes even if nothing else comes.
			ready = true
			e := &WatchEvent{Index: at, Type: EventReady, Time: time.Now().UTC()}
			buf = sseFrame(buf, e, true)
		}
		if len(buf) > 0 {
			if err := send(buf); err != nil {
				r.log.Debug("watch client gone", "remote", req.RemoteAddr, "error", err)
				return
			}
		}
		for _, e := range evs {
			if e.Type == EventResync {
				return
			}
		}
		if len(evs) > 0 && wake != nil {
			continue // more may be there
		}
		select {
		case <-wake:
		case <-req.Context().Done():
			return
		case <-r.watch.done:
			return
		case <-r.httpClosing:
			return
		}
	}
}

// sseFrame appends one event as an SSE frame.
func sseFrame(b []byte, e *WatchEvent, withID bool) []byte {
	data := e.encoded()
	b = append(b, "event: "...)
	b = append(b, e.Type...)
	b = append(b, '\n')
	if withID {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, e.Index, 10)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// poolLongPoll holds GET /v1/pools/{handle}?index=N until the pool's
// last change is past N or the wait ends; it returns the index to answer
// with.
func (r *Registrar) poolLongPoll(req *http.Request, h asap.PoolHandle) (uint64, error) {
	wq, err := parseWatchQuery(req, false)
	if err != nil {
		return 0, err
	}
	idx, wake := r.watch.poolIndex(h)
	if !wq.resume || idx > wq.index {
		return idx, nil
	}
	t := time.NewTimer(wq.wait)
	defer t.Stop()
	for idx <= wq.index {
		select {
		case <-wake:
		case <-t.C:
			return idx, nil
		case <-req.Context().Done():
			return idx, nil
		case <-r.httpClosing:
			return idx, nil
		}
		idx, wake = r.watch.poolIndex(h)
	}
	return idx, nil
}
