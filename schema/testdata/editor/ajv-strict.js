// Compiles the Dibfile schema with ajv 8 in strict mode (draft 2020-12),
// as a strict editor client would; exits 1 with ajv's message if it
// refuses. markdownDescription is the annotation keyword editors add (VS
// Code, yaml-language-server); schemaSequence is yaml-language-server's
// schema per YAML document of a file (a Dibfile has one document: the
// second entry refuses a second one); union types ("type": ["string",
// "object"]) are standard JSON Schema that ajv wants allowed explicitly.
'use strict';
const fs = require('fs');
const Ajv2020 = require('ajv/dist/2020');
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'markdownDescription', schemaType: 'string' });
ajv.addKeyword({ keyword: 'schemaSequence', schemaType: 'array' });
try {
  ajv.compile(JSON.parse(fs.readFileSync(process.argv[2], 'utf8')));
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
