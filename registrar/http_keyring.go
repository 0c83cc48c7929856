package registrar

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"

	"github.com/rserpool-go/registrar/cluster"
)

// The gossip keyring through the admin API (operator role):
//
//	GET  /v1/keyring            this registrar's keys (fingerprints, the primary)
//	POST /v1/keyring/{op}       op install, use or remove; body {"key": "BASE64"}:
//	                            applied here and at every alive member
//
// A rotation without downtime: install the new key, use it, remove the
// old one; each step reaches every alive registrar before it answers.

// KeyringRequest is the body of POST /v1/keyring/{op}.
type KeyringRequest struct {
	Key string `json:"key"`
}

// KeyringResult is one registrar's answer to a keyring change.
type KeyringResult struct {
	Registrar string `json:"registrar"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
}

// KeyringChange is the answer of POST /v1/keyring/{op}.
type KeyringChange struct {
	Results []KeyringResult `json:"results"`
}

func (r *Registrar) keyringHandlers(mux *http.ServeMux) {
	mux.Handle("GET /v1/keyring", r.guard(RoleOperator, func(w http.ResponseWriter, _ *http.Request) {
		keys, err := r.hs.GossipKeys()
		if err != nil {
			writeError(w, http.StatusConflict, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, keys)
	}))
	mux.Handle("POST /v1/keyring/{op}", r.guard(RoleOperator, r.handleKeyring))
}

func (r *Registrar) handleKeyring(w http.ResponseWriter, req *http.Request) {
	op := cluster.KeyOp(req.PathValue("op"))
	if op != cluster.KeyInstall && op != cluster.KeyUse && op != cluster.KeyRemove {
		writeError(w, http.StatusNotFound, "keyring operation %q: want install, use or remove", req.PathValue("op"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 4096))
	var kr KeyringRequest
	if err == nil {
		err = json.Unmarshal(body, &kr)
	}
	if err != nil || kr.Key == "" {
		writeError(w, http.StatusBadRequest, `want the body {"key": "BASE64"}: %v`, err)
		return
	}
	if err := r.hs.ChangeGossipKey(op, kr.Key); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, cluster.ErrNoEncryption) {
			code = http.StatusConflict
		}
		writeError(w, code, "%v (nothing changed)", err)
		return
	}
	res := KeyringChange{Results: []KeyringResult{{Registrar: hexID(r.id), OK: true}}}
	if req.Header.Get(headerProxied) == "" {
		res.Results = append(res.Results, r.keyringFanOut(req, body)...)
	}
	code := http.StatusOK
	for _, x := range res.Results {
		if !x.OK {
			code = http.StatusMultiStatus
		}
	}
	writeJSON(w, code, res)
}

// keyringFanOut applies a keyring change at every other alive member
// through its admin API (marked proxied: it goes no further).
func (r *Registrar) keyringFanOut(req *http.Request, body []byte) []KeyringResult {
	var out []KeyringResult
	for _, m := range r.hs.Members() {
		if m.Meta.ID == r.id || m.Status != cluster.StatusAlive {
			continue
		}
		res := KeyringResult{Registrar: hexID(m.Meta.ID)}
		if m.Meta.HTTP == "" {
			res.Error = "its admin API address is unknown (http off?)"
			out = append(out, res)
			continue
		}
		resp, err := r.forward(req, m.Meta.HTTP, bytes.NewReader(body), int64(len(body)))
		if err != nil {
			res.Error = err.Error()
		} else {
			var got KeyringChange
			var apiErr APIError
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && json.Unmarshal(b, &got) == nil:
				res.OK = true
			case json.Unmarshal(b, &apiErr) == nil && apiErr.Error != "":
				res.Error = apiErr.Error
			default:
				res.Error = resp.Status
			}
		}
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Registrar < out[j].Registrar })
	return out
}
