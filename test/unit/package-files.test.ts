// The files the package ships besides code: example flows and the editor's declarations.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_NODE_TYPES, REPO_ROOT } from '../support/paths';

const EXAMPLES = path.join(REPO_ROOT, 'examples');

describe('package files: the examples', function () {
  it('are importable flows, each explaining itself in a comment, covering every node type', function () {
    const files = fs.readdirSync(EXAMPLES).filter((file) => file.endsWith('.json'));
    assert.ok(files.length >= 8);
    const types = new Set<string>();
    for (const file of files) {
      const flow = JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), 'utf8')) as Array<{ type: string; info?: unknown }>;
      flow.forEach((entry) => types.add(entry.type));
      const comment = flow.find((entry) => entry.type === 'comment');
      assert.ok(comment && String(comment.info).length > 200, `${file} has an explaining comment`);
      assert.match(String(comment.info), /npm start/, `${file} says how to run it`);
      assert.ok(
        flow.every((entry) => !JSON.stringify(entry).includes('"credentials"')),
        `${file} carries no secrets`,
      );
    }
    for (const type of PACKAGE_NODE_TYPES) {
      assert.ok(types.has(type), `${type} appears in an example`);
    }
  });
});

describe('package files: the editor', function () {
  it('the editor declares every secret as a password credential', function () {
    const html = fs.readFileSync(path.join(REPO_ROOT, 'nodes', 'aliyun-iot-connection.html'), 'utf8');
    for (const field of ['deviceSecret', 'accessKeySecret', 'token']) {
      assert.match(html, new RegExp(`${field}: \\{ type: 'password' \\}`));
    }
  });
});

describe('package files: the README', function () {
  it('links only images the package ships, so it reads the same from the tarball as on a repository host', function () {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const shipped = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
    const images = [...readme.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((match) => match[1]);
    assert.ok(images.length > 0, 'the README shows images');
    for (const image of images) {
      assert.ok(shipped.includes(image), `${image} is not in package.json files`);
      assert.ok(fs.existsSync(path.join(REPO_ROOT, image)), `${image} exists`);
    }
  });
});
