package registrar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/snapshot"
)

// Snapshots through the admin API and the offline restore hook.
//
// A save is taken at the raft leader: after a barrier (every entry
// committed before the request is applied), one bbolt read transaction
// is written to a spool file in the data directory, which is verified and
// then streamed to the client; the transaction lives only as long as the
// local write. A restore is carried out by the leader through raft
// (raft.Restore): raft installs the snapshot in its FSM and sends it to
// the followers as an InstallSnapshot, and every later member gets it the
// same way, because the log has a hole where the restore happened.

// PendingRestoreFile is the snapshot `registrar snapshot restore -data-dir`
// leaves in a new data directory; the registrar installs it at its first
// start and renames it to PendingRestoreFile + ".done".
const PendingRestoreFile = "restore.snap"

// spoolPrefix starts the names of the temporary files of saves and
// uploads in the data directory (removed at start when left by a crash).
const spoolPrefix = ".snapshot-"

// SnapshotRestoreResult is the answer of PUT /v1/snapshot.
type SnapshotRestoreResult struct {
	// Snapshot is the restored snapshot's metadata with its counts.
	Snapshot snapshot.Meta `json:"snapshot"`
	// RaftIndex is the raft index of the restore in this cluster's log.
	RaftIndex uint64 `json:"raft_index"`
}

// Response headers of GET /v1/snapshot.
const (
	HeaderSnapshotIndex = "X-Snapshot-Raft-Index"
	HeaderSnapshotPools = "X-Snapshot-Pools"
	HeaderSnapshotPEs   = "X-Snapshot-PEs"
	headerProxied       = "X-Registrar-Proxied"
)

// snapshotHeadLimit bounds what an upload's header check reads (the
// fixed header and the metadata, with the reader's buffering).
const snapshotHeadLimit = 1 << 20

// restoreMu lets one restore run at a time in this process.
var restoreMu sync.Mutex

// snapshotHandlers serves:
//
//	GET /v1/snapshot   a verified snapshot of the handlespace, taken at the raft leader
//	PUT /v1/snapshot   replace the cluster's handlespace with the snapshot in the body
//	                   (verified by the leader first, then installed through raft)
func (r *Registrar) snapshotHandlers(mux *http.ServeMux) {
	mux.Handle("GET /v1/snapshot", r.guard(RoleOperator, r.handleSnapshotSave))
	mux.Handle("PUT /v1/snapshot", r.guard(RoleOperator, r.handleSnapshotRestore))
}

func (r *Registrar) handleSnapshotSave(w http.ResponseWriter, req *http.Request) {
	if r.proxyToLeader(w, req) {
		return
	}
	if err := r.hs.Barrier(req.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "snapshot: wait for the raft log to be applied: %v", err)
		return
	}
	path, meta, err := r.saveSpool()
	if path != "" {
		defer os.Remove(path)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set(HeaderSnapshotIndex, strconv.FormatUint(meta.RaftIndex, 10))
	w.Header().Set(HeaderSnapshotPools, strconv.FormatInt(meta.Pools, 10))
	w.Header().Set(HeaderSnapshotPEs, strconv.FormatInt(meta.PEs, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		r.log.Warn("snapshot download aborted", "remote", req.RemoteAddr, "error", err)
		return
	}
	r.log.Info("snapshot saved for a client", "remote", req.RemoteAddr, "raft-index", meta.RaftIndex, "pools", meta.Pools, "pes", meta.PEs, "bytes", fi.Size())
}

// saveSpool writes a snapshot of the handlespace, from one read
// transaction, to a new file in the data directory and returns its path.
// The file is not synced or verified here: it is read back at once, and
// the client verifies what it receives before it keeps it.
func (r *Registrar) saveSpool() (string, snapshot.Meta, error) {
	f, err := os.CreateTemp(r.cfg.DataDir, spoolPrefix+"save-*.snap")
	if err != nil {
		return "", snapshot.Meta{}, fmt.Errorf("snapshot spool file: %w", err)
	}
	path := f.Name()
	defer f.Close()
	meta, err := r.hs.WriteSnapshot(f, snapshot.Meta{RegistrarID: r.id, Build: Version})
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return path, meta, fmt.Errorf("snapshot spool %s: %w", path, err)
	}
	return path, meta, nil
}

func (r *Registrar) handleSnapshotRestore(w http.ResponseWriter, req *http.Request) {
	if r.proxyToLeader(w, req) {
		return
	}
	if !restoreMu.TryLock() {
		writeError(w, http.StatusConflict, "another snapshot restore is in progress")
		return
	}
	defer restoreMu.Unlock()
	limit := r.cfg.MaxSnapshotSize
	if req.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "the snapshot upload is %d bytes, more than max_snapshot_size (%d) (the handlespace is unchanged)", req.ContentLength, limit)
		return
	}
	body := http.MaxBytesReader(w, req.Body, limit)
	// The header (magic, format version, metadata) is checked before
	// anything is written to the data dir.
	var head bytes.Buffer
	if _, err := snapshot.NewReader(io.TeeReader(io.LimitReader(body, snapshotHeadLimit), &head)); err != nil {
		writeError(w, http.StatusBadRequest, "the upload is not a snapshot this registrar reads: %v (nothing was stored; the handlespace is unchanged)", err)
		return
	}
	f, err := os.CreateTemp(r.cfg.DataDir, spoolPrefix+"upload-*.snap")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "snapshot upload spool: %v", err)
		return
	}
	path := f.Name()
	defer os.Remove(path)
	_, err = f.Write(head.Bytes())
	if err == nil {
		_, err = io.Copy(f, body)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "the snapshot upload is larger than max_snapshot_size (%d bytes) (the handlespace is unchanged)", limit)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "receive the snapshot: %v (the handlespace is unchanged)", err)
		return
	}
	meta, err := r.hs.RestoreFile(req.Context(), path)
	if errors.Is(err, cluster.ErrLeadershipLost) && r.retryRestore(w, req, path) {
		return
	}
	if snapshot.IsFormatError(err) {
		writeError(w, http.StatusBadRequest, "the uploaded snapshot does not verify: %v (the handlespace is unchanged)", strings.TrimPrefix(err.Error(), "snapshot "+path+": "))
		return
	}
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrLeadershipLost) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, "restore: %v", err)
		return
	}
	r.log.Info("handlespace replaced by an uploaded snapshot", "remote", req.RemoteAddr, "pools", meta.Pools, "pes", meta.PEs,
		"snapshot-raft-index", meta.RaftIndex, "snapshot-created", meta.Created)
	writeJSON(w, http.StatusOK, SnapshotRestoreResult{Snapshot: meta, RaftIndex: r.hs.Status().LastIndex})
}

// retryRestore is for a restore whose raft leader stepped down before the
// followers confirmed it (they were busy installing the snapshot: the
// leader's lease ran out). The cluster may hold the snapshot or not; a
// restore replaces the whole handlespace, so doing it again at the new
// leader is safe and gives the operator a definite answer. It waits for a
// leader (bounded by the write timeout) and restores there: here, or by
// forwarding the spooled upload. False when no leader came back.
func (r *Registrar) retryRestore(w http.ResponseWriter, req *http.Request, path string) bool {
	deadline := time.Now().Add(r.cfg.WriteTimeout.D() + 10*time.Second)
	for attempt := 1; time.Now().Before(deadline); {
		select {
		case <-req.Context().Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
		if r.hs.IsLeader() {
			r.log.Info("restore: leadership changed before the followers confirmed; restoring again", "attempt", attempt+1)
			meta, err := r.hs.RestoreFile(req.Context(), path)
			if errors.Is(err, cluster.ErrLeadershipLost) && attempt < 3 {
				attempt++
				continue
			}
			if err != nil {
				return false
			}
			r.log.Info("handlespace replaced by an uploaded snapshot", "remote", req.RemoteAddr, "pools", meta.Pools, "pes", meta.PEs,
				"snapshot-raft-index", meta.RaftIndex, "snapshot-created", meta.Created)
			writeJSON(w, http.StatusOK, SnapshotRestoreResult{Snapshot: meta, RaftIndex: r.hs.Status().LastIndex})
			return true
		}
		addr, _ := r.leaderHTTP()
		if addr == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return false
		}
		r.log.Info("restore: leadership moved before the followers confirmed; restoring at the new leader", "leader", addr)
		r.forwardTo(w, req, addr, f, fi.Size())
		return true
	}
	return false
}

// startSnapshots is called once by open, after raft and the PE
// supervision started and before the listeners open. It removes spool
// files a crash left and installs a pending offline restore
// (PendingRestoreFile): that needs this registrar to have formed a new
// one-node cluster (bootstrap) and to lead it; the other registrars join
// afterwards and receive the handlespace from raft. (PE supervision
// follows restores through the handlespace's changes.)
func (r *Registrar) startSnapshots(ctx context.Context) error {
	if stale, _ := filepath.Glob(filepath.Join(r.cfg.DataDir, spoolPrefix+"*")); len(stale) > 0 {
		for _, p := range stale {
			_ = os.Remove(p)
		}
	}

	pending := filepath.Join(r.cfg.DataDir, PendingRestoreFile)
	if _, err := os.Stat(pending); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if !r.bootstrap {
		return fmt.Errorf("%s: a snapshot restore is pending: start this registrar alone first (without -join and -bootstrap-expect) so that it forms a new cluster and installs the snapshot; then start the other registrars with -join", pending)
	}
	deadline := time.Now().Add(r.cfg.WriteTimeout.D() + 10*time.Second)
	for !r.hs.IsLeader() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: a snapshot restore is pending, but this registrar did not become raft leader in time", pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	start := time.Now()
	meta, err := r.hs.RestoreFile(ctx, pending)
	if err != nil {
		return fmt.Errorf("install the pending restore %s: %w", pending, err)
	}
	if err := os.Rename(pending, pending+".done"); err != nil {
		return fmt.Errorf("installed %s, but cannot rename it: %w", pending, err)
	}
	r.log.Info("handlespace restored from snapshot", "file", pending, "pools", meta.Pools, "pes", meta.PEs,
		"snapshot-created", meta.Created, "snapshot-registrar", hexID(meta.RegistrarID), "duration", time.Since(start))
	return nil
}
