package registrar

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Access control on the admin API: tokens with roles, and the refusal of
// cross-site requests. Every route is mounted through (*Registrar).guard
// with the role it needs; the whole handler is wrapped in sameOrigin.

// Role is what a token may do on the admin API; each role includes the
// ones below it.
type Role int

// The roles.
const (
	RoleNone Role = iota
	// RoleRead reads: status, pools, members, raft peers, metrics.
	RoleRead
	// RoleWrite also changes pools and PEs.
	RoleWrite
	// RoleOperator also runs the cluster: snapshots (save and restore),
	// leave, raft peer removal, the gossip keyring, debug/pprof.
	RoleOperator
)

var roleNames = map[string]Role{"read": RoleRead, "write": RoleWrite, "operator": RoleOperator}

func (r Role) String() string {
	for n, v := range roleNames {
		if v == r {
			return n
		}
	}
	return "none"
}

// TokensFile is the JSON of http_tokens_file:
//
//	{"tokens": [{"name": "ops", "role": "operator", "secret": "..."}]}
type TokensFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// TokenEntry is one token: a name for the logs, its role, and the secret
// clients send as `Authorization: Bearer SECRET`.
type TokenEntry struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Secret string `json:"secret"`
}

// minSecret is the shortest secret accepted (16 bytes of base64 and more
// are what docs/security.md generates).
const minSecret = 16

// tokens is a loaded tokens file: by the SHA-256 of the secret.
type tokens struct {
	by map[[32]byte]token
}

type token struct {
	name string
	role Role
}

// loadTokens reads and checks a tokens file; every problem names the
// token by its position and name (never the secret).
func loadTokens(path string) (*tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("http_tokens_file: %w", err)
	}
	var f TokensFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("http_tokens_file %s: %v (want {\"tokens\": [{\"name\": ..., \"role\": ..., \"secret\": ...}]})", path, err)
	}
	t := &tokens{by: map[[32]byte]token{}}
	names := map[string]bool{}
	for i, e := range f.Tokens {
		at := fmt.Sprintf("http_tokens_file %s: tokens[%d] (%q)", path, i, e.Name)
		role, ok := roleNames[e.Role]
		switch {
		case e.Name == "" || strings.ContainsFunc(e.Name, func(r rune) bool { return r < 0x21 || r > 0x7e }):
			return nil, fmt.Errorf("%s: name must be printable ASCII without spaces", at)
		case names[e.Name]:
			return nil, fmt.Errorf("%s: name given twice", at)
		case !ok:
			return nil, fmt.Errorf("%s: role %q is not one of read, write, operator", at, e.Role)
		case len(e.Secret) < minSecret:
			return nil, fmt.Errorf("%s: secret shorter than %d characters", at, minSecret)
		}
		h := sha256.Sum256([]byte(e.Secret))
		if _, dup := t.by[h]; dup {
			return nil, fmt.Errorf("%s: secret used by another token", at)
		}
		names[e.Name] = true
		t.by[h] = token{name: e.Name, role: role}
	}
	return t, nil
}

// lookup finds the token of a secret.
func (t *tokens) lookup(secret string) (token, bool) {
	h := sha256.Sum256([]byte(secret))
	for k, v := range t.by {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return v, true
		}
	}
	return token{}, false
}

// caller says who made a request, for the logs: the token's name, else
// the client certificate's common name, else "anonymous".
func caller(req *http.Request, tok *token) string {
	if tok != nil {
		return "token:" + tok.name
	}
	if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		return "cert:" + req.TLS.PeerCertificates[0].Subject.CommonName
	}
	return "anonymous"
}

// guard lets a request through to h when it carries a token of at least
// role need (or when no tokens are configured): 401 without a token or
// with an unknown one, 403 with one whose role is too low, each with a
// JSON error saying what is missing. Requests that change something
// (any method but GET and HEAD) and those that need the operator role
// are logged, accepted or refused, with who made them.
func (r *Registrar) guard(need Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		audit := need >= RoleOperator || (req.Method != http.MethodGet && req.Method != http.MethodHead)
		refuse := func(code int, tok *token, format string, a ...any) {
			msg := fmt.Sprintf(format, a...)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="registrar"`)
			}
			writeError(w, code, "%s", msg)
			r.log.Warn("admin request refused", "method", req.Method, "path", escape(req.URL.Path), "who", caller(req, tok),
				"remote", req.RemoteAddr, "reason", msg)
		}
		var tok *token
		if set := r.tokens.Load(); set != nil {
			auth := req.Header.Get("Authorization")
			if auth == "" {
				refuse(http.StatusUnauthorized, nil, "missing token: %s %s needs a token of role %s or higher (`Authorization: Bearer TOKEN`; the CLI's -token or REGISTRAR_HTTP_TOKEN)", req.Method, req.URL.Path, need)
				return
			}
			secret, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok {
				refuse(http.StatusUnauthorized, nil, "the Authorization header is not `Bearer TOKEN`")
				return
			}
			t, ok := set.lookup(strings.TrimSpace(secret))
			if !ok {
				refuse(http.StatusUnauthorized, nil, "unknown token: %s %s needs a token of role %s or higher", req.Method, req.URL.Path, need)
				return
			}
			tok = &t
			if t.role < need {
				refuse(http.StatusForbidden, tok, "token %q has role %s: %s %s needs role %s", t.name, t.role, req.Method, req.URL.Path, need)
				return
			}
		}
		if audit {
			r.log.Info("admin request accepted", "method", req.Method, "path", escape(req.URL.Path), "who", caller(req, tok), "remote", req.RemoteAddr)
		}
		h(w, req)
	})
}

// sameOrigin refuses what a browser could send from another site: a
// request that changes something (not GET, HEAD or OPTIONS) with an
// Origin other than this admin API's own, and a POST without a token and
// with a content type a form can send (none, text/plain, form
// encodings), which a browser sends across sites without asking (no CORS
// preflight; PUT and DELETE are always preflighted, and the admin API
// answers no preflight).
func (r *Registrar) sameOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, req)
			return
		}
		writeError := func(w http.ResponseWriter, code int, format string, a ...any) {
			msg := fmt.Sprintf(format, a...)
			r.log.Warn("admin request refused", "method", req.Method, "path", escape(req.URL.Path), "who", caller(req, nil),
				"remote", req.RemoteAddr, "origin", escape(req.Header.Get("Origin")), "reason", msg)
			writeJSON(w, code, APIError{Error: msg})
		}
		if o := req.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if o == "null" || err != nil || !strings.EqualFold(u.Host, req.Host) {
				writeError(w, http.StatusForbidden, "cross-site request refused: Origin %q is not this admin API (%s)", o, req.Host)
				return
			}
		}
		if req.Header.Get("Sec-Fetch-Site") == "cross-site" {
			writeError(w, http.StatusForbidden, "cross-site request refused (Sec-Fetch-Site: cross-site)")
			return
		}
		if req.Method == http.MethodPost && req.Header.Get("Authorization") == "" && simpleContentType(req.Header.Get("Content-Type")) {
			writeError(w, http.StatusForbidden, "%s %s needs a token or a Content-Type such as application/json (a browser sends %q across sites without asking)",
				req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			return
		}
		h.ServeHTTP(w, req)
	})
}

// simpleContentType reports whether a browser form could send ct.
func simpleContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return true
	}
	return false
}
