package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// WriteJSON writes the plan as indented JSON. The output is a pure function
// of the plan value: struct fields in declaration order, map keys sorted.
func (p *Plan) WriteJSON(w io.Writer) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Read decodes a plan file and refuses one it cannot trust: another
// format version, a document that does not match the plan file's JSON
// Schema (Schema), or content that does not hash to the IDs and digests
// the file states (Verify) — a plan changed after `dib plan` is an error
// naming the step.
func Read(r io.Reader) (*Plan, error) {
	var probe struct {
		FormatVersion json.RawMessage `json:"format_version"`
		DibVersion    string          `json:"dib_version"`
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	// A byte order mark is not part of the document (editors on Windows
	// write one), as for a Dibfile.
	data = TrimBOM(data)
	if bytes.HasPrefix(data, bom) {
		return nil, fmt.Errorf("not a dib plan file: it starts with more than one byte order mark (U+FEFF)")
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a dib plan file: %w", err)
	}
	if probe.FormatVersion == nil || string(probe.FormatVersion) == "null" {
		return nil, fmt.Errorf("not a dib plan file: no format_version")
	}
	var version int
	if err := json.Unmarshal(probe.FormatVersion, &version); err != nil {
		return nil, fmt.Errorf("not a dib plan file: format_version %s is not a version number", diag.Clip(string(probe.FormatVersion)))
	}
	if version != FormatVersion {
		return nil, fmt.Errorf("plan format version %d (written by dib %s) is not supported; this dib reads version %d: run `dib plan -o` again",
			version, diag.Clip(probe.DibVersion), FormatVersion)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("plan file: %w", err)
	}
	if err := validateSchema(doc); err != nil {
		return nil, fmt.Errorf("plan file %w", err)
	}
	var p Plan
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("plan file: %w", err)
	}
	if err := p.Verify(); err != nil {
		return nil, fmt.Errorf("plan file: %w", err)
	}
	return &p, nil
}

// CheckDibVersion refuses a plan written by another major version of dib
// (the first number of the version; "dev" builds match any).
func CheckDibVersion(planVersion, ours string) error {
	major := func(v string) string {
		m, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
		return m
	}
	if planVersion == "" || ours == "" || strings.HasPrefix(ours, "dev") || major(planVersion) == major(ours) {
		return nil
	}
	return fmt.Errorf("the plan was written by dib %s; this is dib %s, another major version: run `dib plan -o` again", diag.Clip(planVersion), ours)
}

// TrimBOM returns data without a leading UTF-8 byte order mark.
func TrimBOM(data []byte) []byte { return bytes.TrimPrefix(data, bom) }

var bom = []byte("\ufeff")

// Blob returns the content of a file of the hook tree.
func (p *Plan) Blob(sha string) ([]byte, bool) {
	b, ok := p.Blobs[sha]
	return b, ok
}
