// Validates the files given with ajv 8 (draft 2020-12, strict, as
// ajv-strict.js compiles the schema), reading YAML with the yaml package
// (the reader yaml-language-server uses), as an editor built on them would:
// a YAML error, or a schema error in the first document, or a second
// document that is not null (the schema's schemaSequence), refuses the
// file; a file without a document is not validated. Prints
// {"file": {"rejects": bool, "message": M}} as JSON. Used by
// spec/editor_test.go.
'use strict';
const fs = require('fs');
const Ajv2020 = require('ajv/dist/2020');
const YAML = require('yaml');

const [schemaPath, ...files] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'markdownDescription', schemaType: 'string' });
ajv.addKeyword({ keyword: 'schemaSequence', schemaType: 'array' });
const validate = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));

function verdict(text) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(text);
  } catch (e) {
    return { rejects: false, message: 'the YAML reader failed: ' + e.message };
  }
  for (const [i, d] of docs.entries()) {
    if (d.errors.length > 0) return { rejects: true, message: d.errors[0].message };
    if (d.contents === null) continue; // no node: nothing to validate
    let value;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch (e) {
      return { rejects: true, message: e.message };
    }
    if (i > 0) {
      if (value !== null) return { rejects: true, message: 'a second YAML document' };
      continue;
    }
    if (!validate(value)) return { rejects: true, message: ajv.errorsText(validate.errors) };
  }
  return { rejects: false, message: '' };
}

const out = {};
for (const f of files) out[f] = verdict(fs.readFileSync(f, 'utf8'));
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
