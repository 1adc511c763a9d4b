// The editor files as the build writes them: their rules object is the library's, they hold no copy of a pattern or
// number, and each validator accepts exactly what the runtime accepts.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { ConnectionSettings, invokeDevice, OpenApiClient, resolveCloud, resolveConnection } from '../../nodes/lib/connection';
import {
  AMQP_PORTS,
  API_PORTS,
  DEFAULTS,
  IDENTIFIER_PATTERNS,
  MQ_CLIENT_ID_SEPARATOR,
  RANGES,
  SERVICE_LIMITS,
  SIGN_METHODS,
  buildPost,
  validateDeviceName,
  validateProductKey,
} from '../../nodes/lib/protocol';

const ROOT = path.join(__dirname, '..', '..', '..');
const SOURCE_DIR = path.join(ROOT, 'nodes');
const BUILT_DIR = path.join(ROOT, 'dist', 'nodes');
const EDITOR_FILES = fs.readdirSync(SOURCE_DIR).filter((file) => file.endsWith('.html'));
const FILES_WITH_RULES = [
  'aliyun-iot-command.html',
  'aliyun-iot-connection.html',
  'aliyun-iot-invoke.html',
  'aliyun-iot-post.html',
  'aliyun-iot-subdevice.html',
];

type Validator = (this: Record<string, unknown>, value: unknown) => boolean;
interface NodeDefinition {
  defaults: Record<string, { value: unknown; validate?: Validator }>;
}

/** The node definition's JavaScript: the first `<script type="text/javascript">` of an editor file. */
function editorScript(html: string): string {
  const match = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(match, 'no <script type="text/javascript"> in the editor file');
  return match[1];
}

/** Runs a built editor file's script against as much of the editor as it touches when it registers its node. */
function registeredDefinition(file: string): NodeDefinition {
  const definitions: Record<string, NodeDefinition> = {};
  const RED = {
    nodes: {
      registerType: (type: string, definition: NodeDefinition) => {
        definitions[type] = definition;
      },
    },
    validators: { number: () => (value: unknown) => value === '' || !Number.isNaN(Number(value)) },
  };
  // No dialog is open: `$('#node-config-input-…')` finds nothing, so validators read the node's own properties.
  const $ = () => ({ length: 0 });
  vm.runInNewContext(editorScript(fs.readFileSync(path.join(BUILT_DIR, file), 'utf8')), { RED, $, URL });
  const type = file.replace(/\.html$/, '');
  assert.ok(definitions[type], `${file} registers no ${type}`);
  return definitions[type];
}

/** Whether the editor shows the node valid: every validator passes, on the defaults overridden by `node`. */
function editorAccepts(definition: NodeDefinition, node: object, field: string, value: unknown): boolean {
  assert.ok(definition.defaults[field].validate, `no validator for ${field}`);
  const properties: Record<string, unknown> = Object.fromEntries(
    Object.entries(definition.defaults).map(([name, property]) => [name, property.value]),
  );
  Object.assign(properties, node, { [field]: value });
  return Object.entries(definition.defaults).every(
    ([name, property]) => !property.validate || property.validate.call(properties, properties[name]) === true,
  );
}

function accepts(action: () => unknown): boolean {
  try {
    action();
    return true;
  } catch {
    return false;
  }
}

describe('editor rules', function () {
  it("the built editor files carry the library's patterns, ranges, limits and defaults", function () {
    for (const file of FILES_WITH_RULES) {
      const match = /var rules = (\{.*\});/.exec(fs.readFileSync(path.join(BUILT_DIR, file), 'utf8'));
      assert.ok(match, `${file}: no rules object`);
      const rules = JSON.parse(match[1]) as Record<string, unknown>;
      const patterns = Object.fromEntries(Object.entries(IDENTIFIER_PATTERNS).map(([kind, pattern]) => [kind, pattern.source]));
      assert.deepEqual(rules.patterns, patterns, file);
      assert.deepEqual(rules.ranges, RANGES, file);
      assert.deepEqual(rules.limits, SERVICE_LIMITS, file);
      assert.deepEqual(rules.defaults, DEFAULTS, file);
      assert.deepEqual(rules.endpointSchemes, { amqp: Object.keys(AMQP_PORTS), api: Object.keys(API_PORTS) }, file);
      assert.equal(rules.mqClientIdSeparator, MQ_CLIENT_ID_SEPARATOR, file);
    }
    for (const file of EDITOR_FILES) {
      assert.ok(!fs.readFileSync(path.join(BUILT_DIR, file), 'utf8').includes('ALIYUN_IOT_EDITOR_RULES'), `${file}: marker left`);
    }
  });

  it('the hand-written editor files hold no copy of a pattern or a limit', function () {
    const numbers = new Set<number>();
    const collect = (value: unknown): void => {
      if (typeof value === 'number') numbers.add(value);
      else if (value !== null && typeof value === 'object') Object.values(value).forEach(collect);
    };
    [RANGES, DEFAULTS, SERVICE_LIMITS].forEach(collect);
    for (const file of EDITOR_FILES) {
      const script = editorScript(fs.readFileSync(path.join(SOURCE_DIR, file), 'utf8'));
      for (const [kind, pattern] of Object.entries(IDENTIFIER_PATTERNS)) {
        assert.ok(!script.includes(pattern.source), `${file} copies the ${kind} pattern`);
      }
      for (const literal of script.match(/(?<![\w.$])\d+(?![\w.])/g) ?? []) {
        const value = Number(literal);
        assert.ok(value <= 1 || !numbers.has(value), `${file} holds the number ${literal}, which is a limit of the library`);
      }
    }
  });

  describe('each editor validator accepts what the runtime accepts', function () {
    const connection = registeredDefinition('aliyun-iot-connection.html');
    const credentials = { deviceSecret: 'secret', accessKeyId: 'AK', accessKeySecret: 'SK' };
    const bases: Record<'iot' | 'mq' | 'cloud', ConnectionSettings> = {
      iot: { mode: 'iot', productKey: 'a1B2c3D4e5F', deviceName: 'dev01', credentials },
      mq: { mode: 'mq', instanceId: 'post-cn-test', groupId: 'GID_test', deviceId: 'dev01', credentials },
      cloud: { mode: 'cloud', region: 'cn-shanghai', instanceId: 'iot-06z00test', consumerGroupId: 'DEFAULT_GROUP', credentials },
    };
    const cases: Array<[keyof typeof bases, keyof ConnectionSettings, unknown[]]> = [
      ['iot', 'productKey', ['a1B2c3D4e5F', 'a1B2c3D4e5', 'a1B2c3D4e5F6', 'a1B2c3D4e_F']],
      ['iot', 'deviceName', ['dev', 'dev0', 'd'.repeat(32), 'd'.repeat(33), 'dev 01', 'dev@x.y:z-_', 'dev&01']],
      ['iot', 'clientId', ['', 'AA:BB:CC:DD', 'pk&dn', 'pk.dn', 'a|b', 'a,b', 'a=b', 'c'.repeat(64), 'c'.repeat(65)]],
      ['iot', 'region', ['', 'cn-shanghai', 'ap-southeast-1', 'CN-SHANGHAI', 'shanghai']],
      ['iot', 'instanceId', ['', 'iot-06z00test', 'iot 06', 'i'.repeat(64), 'i'.repeat(65)]],
      ['iot', 'keepalive', [29, 30, 60, 1200, 1201, '300', 30.5]],
      ['iot', 'port', ['', '1', '1883', '0', '65535', '65536']],
      ['mq', 'groupId', ['GID_abc', 'GID-abc', 'GID_ab', `GID_${'g'.repeat(60)}`, `GID_${'g'.repeat(61)}`, 'gid_abc', 'GID_a.b']],
      ['mq', 'deviceId', ['dev01', 'dev.01', 'dev@01', 'd'.repeat(64 - 'GID_test@@@'.length), 'd'.repeat(65 - 'GID_test@@@'.length)]],
      ['mq', 'instanceId', ['post-cn-test', 'post cn', '']],
      ['mq', 'keepalive', [0, 1, 60, 65535, 65536]],
      ['cloud', 'clientId', ['', 'app-1', 'a&b', 'a|b', 'host.local:1@x', 'c'.repeat(64), 'c'.repeat(65)]],
      ['cloud', 'region', ['', 'cn-shanghai', 'Shanghai']],
      ['cloud', 'instanceId', ['', 'iot-06z00test', 'iot/06']],
      [
        'cloud',
        'amqpEndpoint',
        ['', 'amqps://127.0.0.1:5671', 'amqp://localhost', 'amqps://host:5671/', 'http://host', 'amqps://', 'host:5671'],
      ],
      [
        'cloud',
        'apiEndpoint',
        ['', 'https://iot.cn-shanghai.aliyuncs.com', 'http://127.0.0.1:8080/api', 'ftp://host', 'https://', 'iot.aliyuncs.com'],
      ],
    ];
    for (const [mode, field, values] of cases) {
      it(`${mode} ${field}`, function () {
        const base = bases[mode];
        const resolve = mode === 'cloud' ? resolveCloud : resolveConnection;
        for (const value of values) {
          const runtime = accepts(() => resolve({ ...base, [field]: value }));
          assert.equal(
            editorAccepts(connection, { ...base }, field, value),
            runtime,
            `${JSON.stringify(value)}: runtime ${runtime ? 'accepts' : 'refuses'}`,
          );
        }
      });
    }

    it('cloud uid (the old public instance, without an instance id)', function () {
      const base = { ...bases.cloud, instanceId: '' };
      assert.equal(editorAccepts(connection, base, 'amqpEndpoint', 'amqps://127.0.0.1:5671'), true, 'an AMQP endpoint needs no uid');
      for (const value of ['', '1234567890', '12ab', '1'.repeat(32), '1'.repeat(33)]) {
        assert.equal(
          editorAccepts(connection, base, 'uid', value),
          accepts(() => resolveCloud({ ...base, uid: value })),
          value,
        );
      }
    });

    it('post event', function () {
      const post = registeredDefinition('aliyun-iot-post.html');
      const device = { productKey: 'a1B2c3D4e5F', deviceName: 'dev01' };
      for (const value of ['alarm', 'over_heat', 'property', 'properties', 'e'.repeat(64), 'e'.repeat(65), 'a-b']) {
        const runtime = accepts(() => buildPost(device, '1', { kind: 'event', eventId: value, params: {}, ack: true }));
        assert.equal(editorAccepts(post, {}, 'event', value), runtime, value);
      }
      assert.equal(post.defaults.timeout.value, DEFAULTS.postTimeoutMs);
    });

    it('invoke timeout, product key, device name and identifier', async function () {
      const invoke = registeredDefinition('aliyun-iot-invoke.html');
      const api = { call: async () => ({ RrpcCode: 'SUCCESS', MessageId: '1', PayloadBase64Byte: '' }) } as unknown as OpenApiClient;
      const request = { action: 'rrpc' as const, productKey: 'a1B2c3D4e5F', deviceName: 'dev01', payload: 'ping' };
      for (const value of [999, 1000, 5000, 8000, 8001, 1500.5]) {
        const runtime = await invokeDevice(api, { ...request, timeoutMs: value }).then(
          () => true,
          () => false,
        );
        assert.equal(editorAccepts(invoke, {}, 'timeout', value), runtime, String(value));
      }
      assert.equal(editorAccepts(invoke, {}, 'timeout', ''), true);
      assert.equal(invoke.defaults.timeout.value, DEFAULTS.rrpcTimeoutMs);
      for (const [field, kind] of [
        ['productKey', 'productKey'],
        ['deviceName', 'deviceName'],
        ['identifier', 'thingIdentifier'],
      ] as const) {
        for (const value of ['a1B2c3D4e5F', 'dev01', 'light_switch', 'x'.repeat(64), 'x'.repeat(65), 'a b']) {
          assert.equal(editorAccepts(invoke, {}, field, value), IDENTIFIER_PATTERNS[kind].test(value), `${field} ${value}`);
        }
      }
    });

    it('sub-device product key and device name (or an environment variable)', function () {
      const subDevice = registeredDefinition('aliyun-iot-subdevice.html');
      const runtime = { productKey: validateProductKey, deviceName: validateDeviceName };
      const base = { productKey: 'a1B2c3D4e5F', deviceName: 'sub01' };
      for (const field of ['productKey', 'deviceName'] as const) {
        for (const value of ['a1B2c3D4e5F', 'a1B2c3D4e5', 'sub01', 'd'.repeat(32), 'd'.repeat(33), 'a b', '']) {
          assert.equal(
            editorAccepts(subDevice, base, field, value),
            accepts(() => runtime[field](value)),
            `${field} ${value}`,
          );
        }
        assert.equal(editorAccepts(subDevice, base, field, '${SUB_DEVICE}'), true, `${field} from the environment`);
      }
      assert.equal(subDevice.defaults.signMethod.value, SIGN_METHODS[0]);
    });

    it('command services: a comma-separated list of thing identifiers', function () {
      const command = registeredDefinition('aliyun-iot-command.html');
      const verdicts: Array<[string, boolean]> = [
        ['', true],
        ['reboot', true],
        ['reboot, set_mode', true],
        ['reboot,,set_mode', true],
        ['reboot;set_mode', false],
        ['re-boot', false],
        ['s'.repeat(64), true],
        ['s'.repeat(65), false],
      ];
      for (const [value, verdict] of verdicts) assert.equal(editorAccepts(command, {}, 'services', value), verdict, value);
    });

    it('connection defaults', function () {
      assert.equal(connection.defaults.keepalive.value, DEFAULTS.keepalive);
      assert.equal(connection.defaults.queueSize.value, DEFAULTS.queueSize);
      assert.equal(connection.defaults.region.value, DEFAULTS.region);
    });
  });
});
