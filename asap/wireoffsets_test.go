package asap_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// codecDirs are the packages that own the wire format (relative to the
// module root). asap/wiretest builds wire bytes by hand on purpose: it is
// the second implementation the codec tests compare with.
var codecDirs = map[string]bool{"asap": true, "enrp": true, "asap/wiretest": true}

// Ensure that no package but the codecs knows where things are in the
// encoded bytes. Every other non-test file of the module is parsed and
// refused when it
//
//  1. turns a wire enum of asap or enrp (a Type, Param or Cause constant)
//     into a byte or a 16-bit number: a message or parameter header built
//     by hand;
//  2. makes a wire enum (asap.Type, asap.ParamType, asap.CauseCode,
//     asap.PolicyType, enrp.Type) out of indexed or sliced bytes or an
//     encoding/binary read: a type code read from raw bytes;
//  3. assembles a big-endian number from indexed bytes (x[i]<<8, ...):
//     what a hand-written reader of the wire format does (the project's
//     own formats, files and envelopes, use encoding/binary).
//
// A conversion that is an argument of a fmt call (a number formatted for
// a log or a metric label) is not refused.
//
// What the rules cannot see (an encoding/binary read at a constant offset
// into parameter bytes) was checked by reading every encoding/binary call
// outside the codecs: each reads or writes a format of its own package
// (the store's file keys and values, the WAL, the raft command envelope,
// the snapshot archive's header and trailer, the TCP framing, a cookie).
func TestNoWireOffsetsOutsideCodecs(t *testing.T) {
	root := ".."
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || codecDirs[filepath.ToSlash(filepath.Dir(rel))] {
			return nil
		}
		checked++
		for _, p := range wireOffsetProblems(t, path) {
			t.Errorf("%s: %s", rel, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files: is the module root %s?", checked, root)
	}
}

// Ensure that the check finds each pattern it is meant to (it would pass
// on anything if it found nothing).
func TestNoWireOffsetsOutsideCodecs_Finds(t *testing.T) {
	src := `package x
import (
	"encoding/binary"
	"fmt"
	a "github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
)
func f(b []byte, enc string) {
	b = append(b, byte(a.TypeHandleResolutionResponse), 0, 0, 0)
	b = append(b, 0, byte(a.ParamPoolElement>>0))
	_ = uint16(enrp.TypeHandleUpdate)
	_ = a.ParamType(binary.BigEndian.Uint16(b))
	_ = enrp.Type(b[0])
	_ = int(enc[18])<<8 | int(enc[19])
	_ = uint32(b[8])<<24
	_ = byte(len(b)) // fine
	_ = fmt.Sprintf("0x%04x", uint16(a.CauseLackOfResources)) // fine: formatted for people
	_ = binary.BigEndian.Uint16(b[2:]) // not seen by the rules
}`
	dir := t.TempDir()
	path := filepath.Join(dir, "x.go")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got := wireOffsetProblems(t, path)
	if len(got) != 7 {
		t.Errorf("found %d problems, want 7:\n%s", len(got), strings.Join(got, "\n"))
	}
}

// wireOffsetProblems parses one file and lists what the rules refuse.
func wireOffsetProblems(t *testing.T, path string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	codec := map[string]bool{} // local names of the asap and enrp imports
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if p != "github.com/rserpool-go/registrar/asap" && p != "github.com/rserpool-go/registrar/enrp" {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		codec[name] = true
	}
	var out []string
	report := func(n ast.Node, what string) {
		out = append(out, fset.Position(n.Pos()).String()+": "+what)
	}
	// wireEnum reports a selector of a wire enum constant of a codec.
	wireEnum := func(e ast.Expr) bool {
		s, ok := e.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		x, ok := s.X.(*ast.Ident)
		if !ok || !codec[x.Name] {
			return false
		}
		for _, p := range []string{"Type", "Param", "Cause"} {
			if strings.HasPrefix(s.Sel.Name, p) && len(s.Sel.Name) > len(p) {
				return true
			}
		}
		return false
	}
	contains := func(e ast.Expr, pred func(ast.Node) bool) bool {
		found := false
		ast.Inspect(e, func(n ast.Node) bool {
			if found || n == nil {
				return false
			}
			found = pred(n)
			return !found
		})
		return found
	}
	rawBytes := func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IndexExpr, *ast.SliceExpr:
			return true
		case *ast.SelectorExpr:
			x, ok := n.X.(*ast.Ident)
			return ok && x.Name == "binary"
		}
		return false
	}
	// Arguments of fmt calls format a number for people, not for the wire.
	formatted := map[ast.Expr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if s, ok := c.Fun.(*ast.SelectorExpr); ok {
				if x, ok := s.X.(*ast.Ident); ok && x.Name == "fmt" {
					for _, a := range c.Args {
						formatted[a] = true
					}
				}
			}
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if len(n.Args) != 1 || formatted[n] {
				return true
			}
			switch fn := n.Fun.(type) {
			case *ast.Ident: // rule 1
				switch fn.Name {
				case "byte", "uint8", "uint16":
					if contains(n.Args[0], func(m ast.Node) bool { e, ok := m.(ast.Expr); return ok && wireEnum(e) }) {
						report(n, "a wire type code turned into bytes: build the message or parameter with the codec")
					}
				}
			case *ast.SelectorExpr: // rule 2
				x, ok := fn.X.(*ast.Ident)
				if !ok || !codec[x.Name] {
					return true
				}
				switch fn.Sel.Name {
				case "Type", "ParamType", "CauseCode", "PolicyType":
					if contains(n.Args[0], rawBytes) {
						report(n, "a wire type code read from raw bytes: read it with the codec")
					}
				}
			}
		case *ast.BinaryExpr: // rule 3
			if n.Op != token.SHL {
				return true
			}
			if lit, ok := n.Y.(*ast.BasicLit); !ok || (lit.Value != "8" && lit.Value != "16" && lit.Value != "24") {
				return true
			}
			x := n.X
			if c, ok := x.(*ast.CallExpr); ok && len(c.Args) == 1 {
				x = c.Args[0]
			}
			if _, ok := x.(*ast.IndexExpr); ok {
				report(n, "a big-endian number assembled from indexed bytes: read the wire format with the codec")
			}
		}
		return true
	})
	return out
}
