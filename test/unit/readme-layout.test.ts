// The README's "Project layout" tree names what is in the repository, and every source file of the layered folders.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..', '..');

/** The paths the layout block names: a line's first column is its depth (two spaces a level); `a, b` names two. */
function layoutPaths(readme: string): string[] {
  const section = readme.slice(readme.indexOf('## Project layout'));
  const block = /```\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'the layout section has a code block');
  const stack: string[] = [];
  const paths: string[] = [];
  for (const line of block[1].split('\n')) {
    const match = /^( *)(\S.*?)(?: {2,}.*)?$/.exec(line);
    if (!match) continue;
    const depth = match[1].length / 2;
    const names = match[2].split(/,\s*/).map((name) => name.trim());
    // A line holding only a description continues the line above.
    if (names.some((name) => !/^[\w.-]+\/?$/.test(name))) continue;
    stack.length = depth;
    for (const name of names) paths.push([...stack, name].join(''));
    if (names.length === 1 && names[0].endsWith('/')) stack[depth] = names[0];
  }
  return paths;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(relative);
    return entry.name.endsWith('.ts') && entry.name !== 'index.ts' ? [relative] : [];
  });
}

describe('README: the project layout', function () {
  const named = layoutPaths(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'));

  it('names only paths that exist', function () {
    assert.ok(named.length > 40, `${named.length} paths read from the layout`);
    const missing = named.filter((entry) => !fs.existsSync(path.join(ROOT, entry.replace(/\/$/, ''))));
    assert.deepEqual(missing, []);
  });

  it('names every source file of nodes/lib, nodes/support and sim', function () {
    const unnamed = ['nodes/lib', 'nodes/support', 'sim'].flatMap(sourceFiles).filter((file) => !named.includes(file));
    assert.deepEqual(unnamed, []);
  });
});
