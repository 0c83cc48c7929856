package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cmd/internal/cli"
	"github.com/rserpool-go/registrar/enrp"
)

// wireDoc is the JSON form of one message, as `rsp decode` prints it and
// `rsp encode` reads it.
type wireDoc struct {
	Protocol     string              `json:"protocol"`
	Type         string              `json:"type"`
	Message      json.RawMessage     `json:"message"`
	Unrecognized []asap.Unrecognized `json:"unrecognized,omitempty"`
}

func runDecode(args []string) int {
	fs := flag.NewFlagSet("rsp decode", flag.ContinueOnError)
	proto := fs.String("proto", "asap", "protocol of the message: asap or enrp")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rsp decode [-proto asap|enrp] HEX|-\n\nPrints the message as indented JSON. HEX may contain spaces, colons and\nnewlines; '-' reads it from standard input.")
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return cli.UsageError(fs, "want one HEX message, or - to read it from standard input")
	}
	in := fs.Arg(0)
	if in == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rsp decode: read stdin:", err)
			return 1
		}
		in = string(b)
	}
	raw, err := parseHex(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsp decode:", err)
		return 1
	}
	out, err := decodeJSON(*proto, raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsp decode:", err)
		return 1
	}
	os.Stdout.Write(out)
	return 0
}

func runEncode(args []string) int {
	fs := flag.NewFlagSet("rsp encode", flag.ContinueOnError)
	proto := fs.String("proto", "", "protocol: asap or enrp (default: the JSON's \"protocol\", else asap)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rsp encode [-proto asap|enrp] < message.json\n\nReads the JSON that 'rsp decode' prints and prints the message in hex.")
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.UsageError(fs, "unexpected arguments %q: the JSON comes on standard input", fs.Args())
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsp encode: read stdin:", err)
		return 1
	}
	b, err := encodeJSON(*proto, in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsp encode:", err)
		return 1
	}
	fmt.Println(hex.EncodeToString(b))
	return 0
}

// parseHex accepts hex digits with optional 0x prefix, whitespace and colons.
func parseHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "0x")
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', ':':
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, errors.New("no input: give the message in hex")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("input is not hex: %w", err)
	}
	return b, nil
}

func decodeJSON(proto string, raw []byte) ([]byte, error) {
	var doc wireDoc
	doc.Protocol = proto
	var m any
	switch proto {
	case "asap":
		am, unrec, err := asap.Unpack(raw, nil)
		if err != nil {
			return nil, err
		}
		m, doc.Type, doc.Unrecognized = am, am.Type().String(), unrec
	case "enrp":
		em, unrec, err := enrp.Unpack(raw, nil)
		if err != nil {
			return nil, err
		}
		m, doc.Type, doc.Unrecognized = em, em.Type().String(), unrec
	default:
		return nil, fmt.Errorf("-proto %q: want asap or enrp", proto)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	doc.Message = body
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func encodeJSON(proto string, in []byte) ([]byte, error) {
	var doc wireDoc
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("read JSON: %w", err)
	}
	if proto == "" {
		proto = doc.Protocol
	}
	if proto == "" {
		proto = "asap"
	}
	if doc.Protocol != "" && doc.Protocol != proto {
		return nil, fmt.Errorf("-proto %s but the JSON says protocol %q", proto, doc.Protocol)
	}
	if len(doc.Message) == 0 {
		return nil, errors.New(`JSON has no "message" object`)
	}
	strict := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(doc.Message))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("message: %w", err)
		}
		return nil
	}
	switch proto {
	case "asap":
		var t asap.Type
		if err := t.UnmarshalText([]byte(doc.Type)); err != nil {
			return nil, err
		}
		m := asap.New(t)
		if m == nil {
			return nil, fmt.Errorf("type %q: not an ASAP message type", doc.Type)
		}
		if err := strict(m); err != nil {
			return nil, err
		}
		return asap.Pack(m)
	case "enrp":
		var t enrp.Type
		if err := t.UnmarshalText([]byte(doc.Type)); err != nil {
			return nil, err
		}
		m := enrp.New(t)
		if m == nil {
			return nil, fmt.Errorf("type %q: not an ENRP message type", doc.Type)
		}
		if err := strict(m); err != nil {
			return nil, err
		}
		return enrp.Pack(m)
	}
	return nil, fmt.Errorf("protocol %q: want asap or enrp", proto)
}
