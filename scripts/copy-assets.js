// Puts each node's editor .html, the message catalogs and the icons beside the compiled node files:
// Node-RED looks for all three next to a node's .js.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const target = path.join(root, 'dist', 'nodes');

fs.mkdirSync(target, { recursive: true });
for (const file of fs.readdirSync(path.join(root, 'nodes'))) {
  if (file.endsWith('.html')) fs.copyFileSync(path.join(root, 'nodes', file), path.join(target, file));
}
fs.rmSync(path.join(target, 'locales'), { recursive: true, force: true });
fs.cpSync(path.join(root, 'nodes', 'locales'), path.join(target, 'locales'), { recursive: true });
fs.rmSync(path.join(target, 'icons'), { recursive: true, force: true });
fs.cpSync(path.join(root, 'icons'), path.join(target, 'icons'), { recursive: true });
