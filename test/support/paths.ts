// Where the tests find the repository's files; the compiled tests run from dist/test/support.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root (sources, examples, the demo registry). */
export const REPO_ROOT = path.join(__dirname, '..', '..', '..');

/** The compiled package: dist/nodes, dist/sim. */
export const BUILD_ROOT = path.join(REPO_ROOT, 'dist');

/** Test fixtures kept as files (test/support/fixtures in the sources). */
export const FIXTURES_DIR = path.join(REPO_ROOT, 'test', 'support', 'fixtures');

/** The package's node types, in the order package.json registers them (the palette's order). */
export const PACKAGE_NODE_TYPES: readonly string[] = Object.keys(
  (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })[
    'node-red'
  ].nodes,
);

/** The config node types among them: no palette entry, no tab. */
export const CONFIG_NODE_TYPES: readonly string[] = ['aliyun-iot-connection', 'aliyun-iot-subdevice'];
