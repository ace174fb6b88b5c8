'use strict';
// Asks yaml-language-server (over stdio, as an editor) for completions of
// block-device: and of an outputs item in a Dibfile, and prints their labels,
// one JSON list per line. Used by schema/editor_test.go.
const cp = require('child_process'); const path = require('path');
const rpc = require('vscode-jsonrpc/node');
(async () => {
  const schemaUri = 'file://' + path.resolve(process.argv[2]);
  const server = cp.spawn(process.execPath, [require.resolve('yaml-language-server/bin/yaml-language-server'), '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(server.stdout), new rpc.StreamMessageWriter(server.stdin));
  const settings = { yaml: { validate: true, completion: true, schemaStore: { enable: false }, schemas: { [schemaUri]: ['/**/*.yaml'] } } };
  conn.onRequest('workspace/configuration', (p) => p.items.map(() => settings.yaml));
  conn.onRequest('client/registerCapability', () => null);
  conn.onNotification(() => {});
  conn.listen();
  await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: { workspace: { configuration: true }, textDocument: { completion: { completionItem: { snippetSupport: false } } } } });
  conn.sendNotification('initialized', {});
  conn.sendNotification('workspace/didChangeConfiguration', { settings });
  const text = 'name: x\nblock-device: \noutputs:\n  - \n';
  const uri = 'file://' + path.resolve('completion-test.yaml');
  conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'yaml', version: 1, text } });
  await new Promise((r) => setTimeout(r, 2000));
  for (const [line, ch] of [[1, 14], [3, 4]]) {
    const res = await conn.sendRequest('textDocument/completion', { textDocument: { uri }, position: { line, character: ch } });
    const items = (res.items || res).map((i) => i.label);
    console.log(line, JSON.stringify(items));
  }
  server.kill(); process.exit(0);
})();
