// Puts each node's editor .html, the message catalogs and the icons beside the compiled node files (Node-RED looks for
// all three next to a node's .js), and writes the identifier patterns, ranges, limits and defaults of the compiled
// nodes/lib/protocol into the editor files in place of RULES_MARKER, and the editor code they share (nodes/editor-shared.js)
// in place of SHARED_MARKER.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const target = path.join(root, 'dist', 'nodes');
const RULES_MARKER = 'ALIYUN_IOT_EDITOR_RULES';
const SHARED_MARKER = 'ALIYUN_IOT_EDITOR_SHARED';

const { editorRules } = require(path.join(target, 'lib', 'protocol'));
// As a script literal: `<` escaped, so that no rule can end the <script> element.
const rulesLiteral = JSON.stringify(editorRules()).replace(/</g, '\\u003c');
// The object expression without its comment lines and the statement's semicolon, in parentheses.
const sharedCode = fs
  .readFileSync(path.join(root, 'nodes', 'editor-shared.js'), 'utf8')
  .replace(/^\/\/.*\n/gm, '')
  .trim()
  .replace(/;$/, '');

fs.mkdirSync(target, { recursive: true });
for (const file of fs.readdirSync(path.join(root, 'nodes'))) {
  if (!file.endsWith('.html')) continue;
  const source = fs.readFileSync(path.join(root, 'nodes', file), 'utf8');
  fs.writeFileSync(path.join(target, file), source.split(RULES_MARKER).join(rulesLiteral).split(SHARED_MARKER).join(sharedCode));
}
fs.rmSync(path.join(target, 'locales'), { recursive: true, force: true });
fs.cpSync(path.join(root, 'nodes', 'locales'), path.join(target, 'locales'), { recursive: true });
fs.rmSync(path.join(target, 'icons'), { recursive: true, force: true });
fs.cpSync(path.join(root, 'icons'), path.join(target, 'icons'), { recursive: true });
