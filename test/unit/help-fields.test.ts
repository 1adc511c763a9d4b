// Every field of every node's editor form is explained in that node's help, in each language: the help names the
// field by the label the form shows (the node's catalog `label.<field>`).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { catalogLanguages } from '../../nodes/lib/errors';

const ROOT = path.join(__dirname, '..', '..', '..');
/** The editor files with the build's rules in place, as the editor runs them. */
const BUILT_NODES = path.join(ROOT, 'dist', 'nodes');
/** Node-RED's own field, explained by Node-RED's help rather than each node's. */
const NODE_RED_FIELDS = ['name'];

/** The `defaults` keys each editor file registers, read by running its script against a stand-in for RED. */
function editorFields(): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const RED = {
    nodes: {
      registerType: (type: string, definition: { defaults: Record<string, unknown> }) => fields.set(type, Object.keys(definition.defaults)),
    },
    validators: { number: () => () => true, regex: () => () => true },
  };
  for (const file of fs.readdirSync(BUILT_NODES).filter((name) => name.endsWith('.html'))) {
    const html = fs.readFileSync(path.join(BUILT_NODES, file), 'utf8');
    const script = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html);
    assert.ok(script, `${file} has no editor script`);
    vm.runInNewContext(script[1], { RED });
  }
  return fields;
}

/** The help's text without tags and entities, whitespace as single spaces. */
function helpText(language: string, type: string): string {
  const html = fs.readFileSync(path.join(ROOT, 'nodes', 'locales', language, `${type}.html`), 'utf8');
  return html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

function labels(language: string, type: string): Record<string, string> {
  const file = path.join(ROOT, 'nodes', 'locales', language, `${type}.json`);
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, { label: Record<string, string> }>)[type].label;
}

describe('help documents every editor field', function () {
  const fields = editorFields();

  it('reads the fields of every node type', function () {
    const types = Object.keys(
      (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })[
        'node-red'
      ].nodes,
    );
    assert.deepEqual([...fields.keys()].sort(), types.sort());
    assert.ok(fields.get('aliyun-iot-connection')?.includes('consumerGroupId'));
    assert.deepEqual(fields.get('aliyun-iot-gateway'), ['name', 'connection', 'outputSecrets']);
  });

  for (const language of catalogLanguages()) {
    it(`names each field by its form label in the ${language} help`, function () {
      const missing: string[] = [];
      for (const [type, keys] of fields) {
        const help = helpText(language, type);
        const label = labels(language, type);
        for (const key of keys.filter((field) => !NODE_RED_FIELDS.includes(field))) {
          if (label[key] === undefined) missing.push(`${type}.${key}: no label in the catalog`);
          else if (!help.includes(label[key])) missing.push(`${type}.${key} ("${label[key]}")`);
        }
      }
      assert.deepEqual(missing, []);
    });
  }
});
