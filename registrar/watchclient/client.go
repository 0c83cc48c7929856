// Package watchclient reads a registrar's change stream (GET /v1/watch,
// Server-Sent Events; see docs/operations.md) and resumes it after a
// broken connection from the last raft index it completed, as `rsp
// watch` and `registrar watch` do. It depends on nothing of the daemon.
package watchclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Event is one event of the stream. Raw is its JSON as the registrar sent
// it; the other fields are decoded from it.
type Event struct {
	Index  uint64    `json:"index"`
	Type   string    `json:"type"`
	Pool   string    `json:"pool,omitempty"`
	PE     *PE       `json:"pe,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Leader *Leader   `json:"leader,omitempty"`
	Member *Member   `json:"member,omitempty"`
	Time   time.Time `json:"time"`
	// ID is the SSE id of the event: set on the last event of each raft
	// index, the index a resume starts after.
	ID  string          `json:"-"`
	Raw json.RawMessage `json:"-"`
}

// PE is the part of a PE an event shows here.
type PE struct {
	ID        string   `json:"id"`
	Home      string   `json:"home"`
	Transport string   `json:"transport"`
	Addresses []string `json:"addresses"`
	Port      uint16   `json:"port"`
	Policy    struct {
		Type string `json:"type"`
		Load uint32 `json:"load"`
	} `json:"policy"`
}

// Leader is a leader.changed event's leader.
type Leader struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	Term uint64 `json:"term"`
}

// Member is a member event's registrar.
type Member struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// Event types that end or frame a stream.
const (
	TypeReady  = "stream.ready"
	TypeResync = "stream.resync"
)

// ErrResync is returned by Stream for a stream.resync event: the events
// after the index asked for are no longer all there; reload the
// handlespace and start again from the index the reload answered.
var ErrResync = errors.New("the registrar asks for a resync")

// Stream opens GET {base}/v1/watch (with ?pool= unless pool is empty,
// and ?index= when resume) and calls fn for each event until the stream
// ends, ctx ends or fn fails. It returns the index a resume should give:
// that of the last event with an SSE id (the last complete raft index),
// or index when there was none. base is http://host:port.
func Stream(ctx context.Context, c *http.Client, base, pool string, index uint64, resume bool, fn func(*Event) error) (uint64, error) {
	q := url.Values{}
	if pool != "" {
		q.Set("pool", pool)
	}
	if resume {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	u := strings.TrimRight(base, "/") + "/v1/watch"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return index, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		return index, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return index, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return index, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data == "" {
				continue
			}
			ev := &Event{ID: id, Raw: json.RawMessage(data)}
			if err := json.Unmarshal([]byte(data), ev); err != nil {
				return index, fmt.Errorf("event %q: %w", data, err)
			}
			if id != "" {
				if v, err := strconv.ParseUint(id, 10, 64); err == nil {
					index = v
				}
			}
			id, data = "", ""
			if err := fn(ev); err != nil {
				return index, err
			}
			if ev.Type == TypeResync {
				return ev.Index, fmt.Errorf("%w: %s", ErrResync, ev.Reason)
			}
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimPrefix(strings.TrimPrefix(line, "id:"), " ")
		}
	}
	if err := sc.Err(); err != nil {
		return index, err
	}
	return index, io.ErrUnexpectedEOF
}

// Watch runs Stream again and again, resuming from the index the last
// one reached, until ctx ends (nil) or fn fails. A broken connection is
// retried after retry (doubling to 10 s; onError hears of it); a resync
// is followed by a fresh stream from now (onError hears of it). The
// first stream starts after index when resume is set, else live.
func Watch(ctx context.Context, c *http.Client, base, pool string, index uint64, resume bool, retry time.Duration,
	fn func(*Event) error, onError func(error)) error {
	wait := retry
	for {
		got := false
		next, err := Stream(ctx, c, base, pool, index, resume, func(e *Event) error {
			got = true
			return fn(e)
		})
		if ctx.Err() != nil {
			return nil
		}
		var fnErr *fnError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		switch {
		case errors.Is(err, ErrResync):
			resume = false // live from now: the caller reloads what it needs
		case got || next != index:
			index, resume, wait = next, true, retry
		}
		if onError != nil && err != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// fnError marks an error of the caller's fn (Watch returns it).
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// Fail wraps an error fn returns to stop Watch with it.
func Fail(err error) error { return &fnError{err} }
