package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// Read decodes a plan file and checks its format version.
func Read(r io.Reader) (*Plan, error) {
	var probe struct {
		FormatVersion *int   `json:"format_version"`
		DibVersion    string `json:"dib_version"`
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a dib plan file: %w", err)
	}
	if probe.FormatVersion == nil {
		return nil, fmt.Errorf("not a dib plan file: no format_version")
	}
	if *probe.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("plan format version %d (written by dib %s) is not supported; this dib reads version %d: run `dib plan -o` again",
			*probe.FormatVersion, probe.DibVersion, FormatVersion)
	}
	var p Plan
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("plan file: %w", err)
	}
	return &p, nil
}

// Blob returns the content of a file of the hook tree.
func (p *Plan) Blob(sha string) ([]byte, bool) {
	b, ok := p.Blobs[sha]
	return b, ok
}
