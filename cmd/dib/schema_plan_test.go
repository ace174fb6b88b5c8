package main

import (
	"encoding/json"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
)

// TestSchemaPlan: `dib schema --plan` prints the plan files' JSON Schema.
func TestSchemaPlan(t *testing.T) {
	code, stdout, stderr := runDib(t, "schema", "--plan")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$id"] != plan.SchemaID || doc["$ref"] != "#/$defs/plan.Plan" {
		t.Errorf("schema head: %v %v", doc["$id"], doc["$ref"])
	}
}
