// Runs yaml-language-server (the real server, over stdio, as an editor
// does) on the files given, with the Dibfile schema associated to every
// file, and prints {"file": [{"line": N, "severity": S, "message": M}]} as
// JSON. Used by schema/editor_test.go.
'use strict';
const cp = require('child_process');
const fs = require('fs');
const path = require('path');
const rpc = require('vscode-jsonrpc/node');

async function main() {
  const [schemaPath, ...files] = process.argv.slice(2);
  const schemaUri = 'file://' + path.resolve(schemaPath);
  const server = cp.spawn(process.execPath, [require.resolve('yaml-language-server/bin/yaml-language-server'), '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(server.stdout), new rpc.StreamMessageWriter(server.stdin));
  const settings = { yaml: { validate: true, hover: false, completion: false, schemaStore: { enable: false }, schemas: { [schemaUri]: ['/**/*.yaml', '/**/*.yml', '/**/Dibfile'] } } };
  const last = new Map();
  let lastAt = Date.now();
  conn.onNotification('textDocument/publishDiagnostics', (p) => {
    last.set(p.uri, p.diagnostics);
    lastAt = Date.now();
  });
  conn.onRequest('workspace/configuration', (p) => p.items.map((it) => (it.section ? settings[it.section] || settings.yaml : settings)));
  conn.onRequest('client/registerCapability', () => null);
  conn.onRequest('window/workDoneProgress/create', () => null);
  conn.onNotification(() => {});
  conn.listen();
  await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: { workspace: { configuration: true } } });
  conn.sendNotification('initialized', {});
  conn.sendNotification('workspace/didChangeConfiguration', { settings });
  // Open every file, then wait until each has diagnostics and the server
  // has been quiet for a while (it validates again once the schema is in).
  const uris = files.map((f) => 'file://' + path.resolve(f));
  files.forEach((f, i) => conn.sendNotification('textDocument/didOpen', { textDocument: { uri: uris[i], languageId: 'yaml', version: 1, text: fs.readFileSync(f, 'utf8') } }));
  const start = Date.now();
  while (!(uris.every((u) => last.has(u)) && Date.now() - lastAt > 2000)) {
    if (Date.now() - start > 120000) throw new Error('no diagnostics for ' + files.filter((f, i) => !last.has(uris[i])).join(' '));
    await new Promise((r) => setTimeout(r, 200));
  }
  const out = {};
  files.forEach((f, i) => {
    out[f] = last.get(uris[i]).map((d) => ({ line: d.range.start.line + 1, severity: d.severity, message: d.message }));
  });
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
  await conn.sendRequest('shutdown');
  conn.sendNotification('exit');
  server.kill();
}
main().catch((e) => { console.error(e); process.exit(1); });
