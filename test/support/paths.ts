// Where the tests find the repository's files; the compiled tests run from dist/test/support.
import * as path from 'node:path';

/** The repository root (sources, examples, the demo registry). */
export const REPO_ROOT = path.join(__dirname, '..', '..', '..');

/** The compiled package: dist/nodes, dist/sim. */
export const BUILD_ROOT = path.join(REPO_ROOT, 'dist');

/** Test fixtures kept as files (test/support/fixtures in the sources). */
export const FIXTURES_DIR = path.join(REPO_ROOT, 'test', 'support', 'fixtures');
