package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/raft"
	"github.com/rserpool-go/registrar/store/raftlog"
)

// Storage faults and the checks of the raft state at start.
//
// A raft log append that fails (a full disk, an I/O error) is retried in
// place, so raft waits for the disk instead of losing leadership and
// electing itself again every election timeout, except on the leader of a
// cluster of several voters: there it fails, raft steps down and a healthy
// registrar takes over. The term and vote (raft.db) are always retried:
// raft panics when it cannot save its term. The FSM waits for a
// handlespace that cannot be written (see FSM.applyStore). Fault reports
// all of them; the registrar refuses writes while there is one.

// retryAppend is the WAL's RetryWrite policy (see above).
func (n *Node) retryAppend(error) bool {
	r := n.started.Load()
	if n.stopping.Load() || r == nil { // shutting down, or opening (starting raft)
		return false
	}
	if r.State() != raft.Leader {
		return true
	}
	voters := 0
	if f := r.GetConfiguration(); f.Error() == nil { // served without raft's main loop
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
	}
	return voters <= 1
}

// Fault returns the storage fault that keeps this node from writing (the
// raft log, the term and vote, the handlespace file; a *store.FaultError
// in the chain), or nil.
func (n *Node) Fault() error {
	if n.wal != nil { // nil in memory (NodeConfig.Inmem)
		if err := n.wal.Fault(); err != nil {
			return err
		}
		if err := n.logs.Fault(); err != nil {
			return err
		}
	}
	return n.store.Fault()
}

// rejoinFix is the recovery of a node whose raft state cannot be used.
const rejoinFix = "in a cluster, rejoin from the leader: stop this registrar, run `registrar raft remove-peer ID` at a healthy one, " +
	"move this data dir's raft/ and handlespace.db aside (keep registrar-id) and start it again; it catches up from the leader. " +
	"A lone registrar: restore a snapshot (`registrar snapshot restore FILE -data-dir DIR`). See docs/operations.md"

// checkState refuses raft state that lost something: raft.db without a
// term beside a raft log (a node that forgot its vote can vote twice in a
// term), a handlespace ahead of the log and the snapshots (the log lost
// entries: a deleted or truncated segment, a deleted wal/ directory), or
// a log that starts after an index no snapshot covers (a deleted first
// segment). raft would start from any of them without a word.
func (n *Node) checkState() error {
	first, _ := n.wal.FirstIndex()
	last, _ := n.wal.LastIndex()
	var snapIdx uint64
	if snaps, err := n.snaps.List(); err == nil && len(snaps) > 0 {
		snapIdx = snaps[0].Index
	}
	applied := n.store.LastApplied()
	dir := n.cfg.Dir
	_, termErr := n.logs.GetUint64([]byte("CurrentTerm")) // raft's key
	switch {
	case termErr != nil && (last > 0 || snapIdx > 0):
		return fmt.Errorf("raft state %s: %s has no term or vote (empty or recreated) but the raft log holds entries up to index %d (snapshot %d): "+
			"refusing to start, since a node that forgot its vote can vote twice in one term. To recover: put back raft.db from a backup, or %s",
			dir, filepath.Join(dir, "raft.db"), last, snapIdx, rejoinFix)
	case applied > max(last, snapIdx):
		what := "ends at index " + fmt.Sprint(last)
		if last == 0 {
			what = "is empty or missing"
		}
		return fmt.Errorf("raft state %s: the handlespace has applied raft index %d, but the raft log in %s %s and the newest snapshot is at %d: "+
			"the log lost entries (a deleted or truncated segment, or a deleted wal/ directory); refusing to start, since raft would reuse those indexes. To recover: %s",
			dir, applied, filepath.Join(dir, "wal"), what, snapIdx, rejoinFix)
	case first > 1 && first-1 > max(snapIdx, applied):
		return fmt.Errorf("raft state %s: the raft log in %s starts at index %d, but no snapshot covers the entries before it (snapshot %d, handlespace at %d): "+
			"a segment was deleted; refusing to start. To recover: %s",
			dir, filepath.Join(dir, "wal"), first, snapIdx, applied, rejoinFix)
	}
	return nil
}

// checkStableStore refuses a raft.db that is missing or empty beside a
// raft log or snapshots, before opening it would create a new one: the
// term and vote are lost.
func checkStableStore(dir string) error {
	p := filepath.Join(dir, "raft.db")
	fi, err := os.Stat(p)
	if err == nil && fi.Size() > 0 || err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil // OpenStable checks it
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	snaps, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	if len(segs) == 0 && len(snaps) == 0 {
		return nil // a new node
	}
	what := "empty"
	if err != nil {
		what = "missing"
	}
	return fmt.Errorf("raft state %s: %s is %s (it has no term or vote) but the raft log or the snapshots hold entries: "+
		"refusing to start, since a node that forgot its vote can vote twice in one term. To recover: put back raft.db from a backup, or %s",
		dir, p, what, rejoinFix)
}

// withFix adds to an error opening the raft state what to do about it.
func withFix(err error, dir string) error {
	var corrupt *raftlog.WALCorruptError
	switch {
	case errors.As(err, &corrupt):
		return err // names its own recovery
	case errors.Is(err, raftlog.ErrStableLocked):
		return fmt.Errorf("%w (another registrar runs on this data dir: stop it, or use another -data-dir)", err)
	case errors.Is(err, raftlog.ErrStableVersion):
		return fmt.Errorf("%w (written by a newer version: run that version)", err)
	case errors.Is(err, raftlog.ErrStableNotBbolt), errors.Is(err, raftlog.ErrStableCorrupt), errors.Is(err, raftlog.ErrStableLayout):
		return fmt.Errorf("%w (raft.db keeps the term and vote and is never recreated silently. To recover: put it back from a backup, or %s)", err, rejoinFix)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (make %s writable by this user, or use another -data-dir)", err, dir)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w (free space on the file system of %s)", err, dir)
	}
	return err
}
