package registrar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/agnivade/levenshtein"
)

// ConfigError is one problem of a configuration, named in the terms of
// the config file: the key, and where the file has it.
type ConfigError struct {
	// File, Line and Col locate the problem in a config file ("" and 0
	// when it does not come from one).
	File      string
	Line, Col int
	// Key is the config key ("keepalive_interval", "enrp_peers[1]"); ""
	// for a problem of the file as a whole (a syntax error).
	Key string
	Msg string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Col)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// filePos is where a config file has a key's value.
type filePos struct{ line, col int }

// configFields maps each config key to its field index in Config.
var configFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}()

// ConfigKeys lists every key a config file may have, sorted.
func ConfigKeys() []string {
	var ks []string
	for k := range configFields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// LoadFile reads a JSON config file over c. It reports every problem of
// the file at once (see ConfigError): syntax errors, truncation, unknown
// and duplicate keys, values of the wrong type, each at its line and
// column. Keys the file gets wrong keep their previous value.
func (c *Config) LoadFile(path string) error {
	_, err := c.loadFile(path)
	return err
}

// loadFile is LoadFile that also returns where each key was set.
func (c *Config) loadFile(path string) (map[string]filePos, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Key: "config", Msg: fmt.Sprintf("cannot read the config file: %v", err)}
	}
	d := &fileDecoder{path: path, data: data, keys: map[string]filePos{}}
	d.decode(c)
	return d.keys, errors.Join(d.errs...)
}

type fileDecoder struct {
	path string
	data []byte
	keys map[string]filePos
	errs []error
}

// at makes an error at byte offset off of the file.
func (d *fileDecoder) at(off int64, key, format string, a ...any) {
	p := d.pos(off)
	d.errs = append(d.errs, &ConfigError{File: d.path, Line: p.line, Col: p.col, Key: key, Msg: fmt.Sprintf(format, a...)})
}

// pos turns a byte offset into a line and a column (both from 1; the
// column counts bytes).
func (d *fileDecoder) pos(off int64) filePos {
	off = max(0, min(off, int64(len(d.data))))
	before := d.data[:off]
	line := 1 + bytes.Count(before, []byte("\n"))
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return filePos{line, col}
}

// skip returns the offset of the first byte at or after off that is
// neither white space nor one of the separators in seps.
func (d *fileDecoder) skip(off int64, seps string) int64 {
	for off < int64(len(d.data)) {
		switch b := d.data[off]; {
		case b == ' ', b == '\t', b == '\n', b == '\r', strings.IndexByte(seps, b) >= 0:
			off++
		default:
			return off
		}
	}
	return off
}

// syntax reports a decoding error of the JSON itself.
func (d *fileDecoder) syntax(err error, off int64) {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		d.at(int64(len(d.data)), "", "the file ends before the JSON object is complete (truncated, or a missing \"}\", \"]\" or quote?)")
	case errors.As(err, &se):
		// Offset counts the bad byte itself.
		d.at(se.Offset-1, "", "%s", se.Error())
	default:
		d.at(off, "", "%v", err)
	}
}

func (d *fileDecoder) decode(c *Config) {
	dec := json.NewDecoder(bytes.NewReader(d.data))
	start := d.skip(0, "")
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		d.at(0, "", `the file is empty: want a JSON object such as {"data_dir": "/var/lib/registrar"}`)
		return
	}
	if err != nil {
		d.syntax(err, start)
		return
	}
	if tok != json.Delim('{') {
		d.at(start, "", "want a JSON object {...} of config keys, got %s", short(d.data[start:dec.InputOffset()]))
		return
	}
	v := reflect.ValueOf(c).Elem()
	for dec.More() {
		keyOff := d.skip(dec.InputOffset(), ",")
		tok, err := dec.Token()
		if err != nil {
			d.syntax(err, keyOff)
			return
		}
		key, _ := tok.(string)
		valOff := d.skip(dec.InputOffset(), ":")
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			d.syntax(err, valOff)
			return
		}
		if first, dup := d.keys[key]; dup {
			d.at(keyOff, "", "duplicate key %q (first set at line %d)", key, first.line)
			continue
		}
		i, known := configFields[key]
		if !known {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := nearest(key, ConfigKeys()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.at(keyOff, "", "%s", msg)
			continue
		}
		d.keys[key] = d.pos(valOff)
		f := v.Field(i)
		nv := reflect.New(f.Type())
		if err := json.Unmarshal(raw, nv.Interface()); err != nil {
			d.at(valOff, key, "want %s, got %s", describeType(f.Type()), short(raw))
			continue
		}
		if string(raw) != "null" {
			f.Set(nv.Elem())
		}
	}
	endOff := d.skip(dec.InputOffset(), "")
	if _, err := dec.Token(); err != nil { // the closing }
		d.syntax(err, endOff)
		return
	}
	if rest := d.skip(dec.InputOffset(), ""); rest < int64(len(d.data)) {
		d.at(rest, "", "more after the end of the JSON object: a config file holds one object")
	}
}

var durationType = reflect.TypeOf(Duration(0))

// describeType says what a value of type t looks like, in the terms of a
// config file.
func describeType(t reflect.Type) string {
	if t == durationType {
		return `a duration like "5s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string in quotes"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a whole number, 0 or more"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return `a list of strings like ["a", "b"]`
		}
	}
	return "a " + t.String()
}

// short shows a JSON value in an error, cut to a readable length.
func short(raw []byte) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// nearest is the known word a mistyped one most likely meant, or "".
func nearest(got string, known []string) string {
	// As the command line's suggestions: 1 edit for short words, 2 from 4
	// letters, 3 from 9.
	limit := 1
	switch n := len(got); {
	case n >= 9:
		limit = 3
	case n >= 4:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, k := range known {
		if d := levenshtein.ComputeDistance(got, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}
