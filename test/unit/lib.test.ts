import { strict as assert } from 'node:assert';
import { AliyunIotError } from '../../nodes/lib/errors';
import {
  RANGES,
  SERVICE_LIMITS,
  checkOwnPublishTopic,
  decodePayload,
  encodePayload,
  exceedsBytes,
  expandPlaceholders,
  filterCovers,
  isOwnPublishTopic,
  isValidFilter,
  validateFilter,
  validatePublishTopic,
} from '../../nodes/lib/protocol';
import { LogMessage } from '../../nodes/lib/errors';
import { resolveCloud, resolveConnection } from '../../nodes/lib/connection';

function code(action: () => unknown): string {
  try {
    action();
  } catch (err) {
    assert.ok(err instanceof AliyunIotError, String(err));
    return err.code;
  }
  throw new Error('no error thrown');
}

describe('lib: topics', function () {
  it('validates filters and publish topics per MQTT 3.1.1 and the service limits', function () {
    for (const filter of ['a/b', '/a/+/c', '#', 'a/#', '+', '+/+', '/']) assert.ok(isValidFilter(filter), filter);
    for (const filter of ['', 'a/#/b', 'a/b#', 'a+/b', 'a/\u0000']) assert.ok(!isValidFilter(filter), filter);
    assert.equal(
      code(() => validateFilter('', SERVICE_LIMITS.iot)),
      'TOPIC_EMPTY',
    );
    assert.equal(
      code(() => validateFilter('x'.repeat(65), SERVICE_LIMITS.mq)),
      'TOPIC_TOO_LONG',
    );
    assert.equal(validateFilter('x'.repeat(128), SERVICE_LIMITS.iot).length, 128);
    assert.equal(
      code(() => validatePublishTopic('a/+', SERVICE_LIMITS.iot)),
      'TOPIC_WILDCARD',
    );
    assert.equal(
      code(() => validatePublishTopic(undefined, SERVICE_LIMITS.iot)),
      'TOPIC_EMPTY',
    );
  });

  it('an IoT Platform device publishes on its own topics only (docs/protocol.md §2), the rule the simulator grants by', function () {
    const own = [
      '/pk/dn/user/update',
      '/pk/dn/user/a/b',
      '/sys/pk/dn/thing/event/property/post',
      '/ext/ntp/pk/dn/request',
      '/ext/rrpc/123/sys/pk/dn/thing/service/s',
      '/ext/rrpc/9/pk/dn/user/rpc',
      '/shadow/update/pk/dn',
      '/ota/device/inform/pk/dn',
      '/ota/device/progress/pk/dn',
    ];
    const others = [
      '/pk/dn2/user/update',
      '/pk2/dn/user/update',
      '/sys/pk/dn2/thing/event/property/post',
      '/pk/dn',
      '/broadcast/pk/x',
      '/shadow/update/pk/dn2',
      '/ota/device/inform/pk/dn/x',
      '/ext/ntp/pk/other/request',
      'pk/dn/user/update',
      '/other',
    ];
    for (const topic of own) assert.ok(isOwnPublishTopic(topic, 'pk', 'dn'), topic);
    for (const topic of others) assert.ok(!isOwnPublishTopic(topic, 'pk', 'dn'), topic);
    assert.equal(
      code(() => checkOwnPublishTopic('/pk/dn2/user/update', 'pk', 'dn')),
      'TOPIC_NOT_OWN',
    );
    assert.equal(
      code(() =>
        resolveConnection({
          mode: 'iot',
          productKey: 'a1B2c3D4e5F',
          deviceName: 'dev01',
          credentials: { deviceSecret: 's' },
        }).checkPublishTopic?.('/a1B2c3D4e5F/dev02/user/update'),
      ),
      'TOPIC_NOT_OWN',
    );
  });

  it("expands the connection's placeholders and refuses unknown ones", function () {
    const variables = { productKey: 'pk', deviceName: 'dn', clientId: 'pk.dn' };
    assert.equal(expandPlaceholders('/${productKey}/${deviceName}/user/${clientId}', variables), '/pk/dn/user/pk.dn');
    assert.equal(expandPlaceholders('/plain/topic', variables), '/plain/topic');
    assert.equal(
      code(() => expandPlaceholders('/${groupId}/x', variables)),
      'PLACEHOLDER_UNKNOWN',
    );
  });

  it('decides whether a granted filter covers a requested one', function () {
    const cases: Array<[string, string, boolean]> = [
      ['/pk/dn/user/get', '/pk/dn/user/get', true],
      ['/pk/dn/user/#', '/pk/dn/user/a/b', true],
      ['/pk/dn/user/#', '/pk/dn/user', true],
      ['/pk/dn/user/#', '/pk/dn/user/#', true],
      ['/pk/+/user/get', '/pk/dn/user/get', true],
      ['/pk/+/user/get', '/pk/+/user/get', true],
      ['/pk/dn/user/get', '/pk/+/user/get', false],
      ['/pk/+/user', '/pk/#', false],
      ['/pk/dn/user/get', '/pk/dn/user/get/x', false],
      ['/pk/dn/user/a/b', '/pk/dn/user/a', false],
      ['/pk/dn/+', '/pk/dn/#', false],
    ];
    for (const [pattern, filter, expected] of cases) assert.equal(filterCovers(pattern, filter), expected, `${pattern} ⊇ ${filter}`);
  });
});

describe('lib: payload', function () {
  it('encodes Buffers as is, strings as UTF-8 and anything else as JSON', function () {
    const buffer = Buffer.from([1, 2]);
    assert.equal(encodePayload(buffer), buffer);
    assert.equal(encodePayload('text'), 'text');
    assert.equal(encodePayload({ a: [1] }), '{"a":[1]}');
    assert.equal(encodePayload(42), '42');
    assert.equal(encodePayload(null), '');
    assert.equal(
      code(() => encodePayload(10n)),
      'PAYLOAD_UNSERIALIZABLE',
    );
  });

  it('measures bytes, not characters', function () {
    assert.equal(exceedsBytes('a'.repeat(10), 10), undefined);
    assert.equal(exceedsBytes('é'.repeat(6), 10), 12);
    assert.equal(exceedsBytes(Buffer.alloc(11), 10), 11);
  });

  it('auto-detects as the core MQTT node does', function () {
    const decode = (text: string): unknown => decodePayload(Buffer.from(text), 'auto-detect');
    assert.deepEqual(decode('{"a":1}'), { a: 1 });
    assert.equal(decode('42'), 42);
    assert.equal(decode(' true'), true);
    assert.equal(decode('hello'), 'hello');
    assert.equal(decode('{not json'), '{not json');
    assert.deepEqual(decodePayload(Buffer.from([0xc3, 0x28]), 'auto-detect'), Buffer.from([0xc3, 0x28]));
    assert.equal(
      code(() => decodePayload(Buffer.from('nope'), 'json')),
      'JSON_INVALID',
    );
  });
});

describe('lib: connection settings', function () {
  const iot = { mode: 'iot' as const, productKey: 'a1B2c3D4e5F', deviceName: 'dev01', credentials: { deviceSecret: 's' } };
  const mq = {
    mode: 'mq' as const,
    instanceId: 'post-cn-x',
    groupId: 'GID_test',
    deviceId: 'd1',
    credentials: { accessKeyId: 'AK', accessKeySecret: 'SK' },
  };

  it('derives IoT Platform defaults: TLS to the region endpoint, ${productKey}.${deviceName}, keepalive 60', function () {
    const profile = resolveConnection(iot);
    assert.equal(profile.endpoint.host, 'a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com');
    assert.equal(profile.endpoint.protocol, 'mqtts');
    assert.equal(profile.clientId, 'a1B2c3D4e5F.dev01');
    assert.deepEqual([profile.keepalive, profile.cleanSession, profile.queueSize], [60, true, 1000]);
    const login = profile.sign();
    assert.match(login.clientId, /^a1B2c3D4e5F\.dev01\|securemode=2,signmethod=hmacsha256,timestamp=\d+,ext=1\|$/);
    assert.ok(!profile.label.includes('s|'), 'the label carries no secret');
  });

  it('derives ApsaraMQ client id, placeholders and limits', function () {
    const profile = resolveConnection(mq);
    assert.equal(profile.clientId, 'GID_test@@@d1');
    assert.deepEqual(profile.variables, { clientId: 'GID_test@@@d1', groupId: 'GID_test', deviceId: 'd1', instanceId: 'post-cn-x' });
    assert.equal(profile.limits.maxPayloadBytes, 64 * 1024);
    assert.equal(profile.sign().username, 'Signature|AK|post-cn-x');
  });

  it('refuses what the platforms would refuse, before connecting', function () {
    assert.equal(
      code(() => resolveConnection({ ...iot, keepalive: 29 })),
      'KEEPALIVE_RANGE',
    );
    assert.equal(
      code(() => resolveConnection({ ...iot, keepalive: 1201 })),
      'KEEPALIVE_RANGE',
    );
    assert.equal(resolveConnection({ ...iot, keepalive: 1200 }).keepalive, 1200);
    for (const historyAfter of [-1, 'soon', RANGES.historyAfter.max + 1]) {
      assert.equal(
        code(() => resolveConnection({ ...iot, historyAfter })),
        'HISTORY_AFTER_RANGE',
        String(historyAfter),
      );
    }
    assert.deepEqual(
      ['', '0', '30', 0.5].map((historyAfter) => resolveConnection({ ...iot, historyAfter }).historyAfterMs),
      [0, 0, 30_000, 500],
    );
    assert.equal(resolveConnection({ ...mq, keepalive: 5 }).keepalive, 5);
    assert.equal(
      code(() => resolveConnection({ ...iot, productKey: 'short' })),
      'PRODUCT_KEY_INVALID',
    );
    assert.equal(
      code(() => resolveConnection({ ...iot, credentials: {} })),
      'CREDENTIAL_MISSING',
    );
    assert.equal(
      code(() => resolveConnection({ ...mq, groupId: 'XID_test' })),
      'GROUP_ID_INVALID',
    );
    assert.equal(
      code(() => resolveConnection({ ...mq, authMode: 'token' })),
      'CREDENTIAL_MISSING',
    );
    assert.equal(
      code(() => resolveConnection({ ...mq, instanceId: '' })),
      'CONFIG_MISSING',
    );
    assert.equal(
      code(() => resolveConnection({ ...iot, queueSize: -1 })),
      'QUEUE_SIZE_INVALID',
    );
    assert.equal(
      code(() => resolveConnection({ ...iot, mode: 'amqp' as 'iot' })),
      'MODE_INVALID',
    );
  });

  it('says what a value must be and what it is, and names fields by their editor labels', function () {
    const message = (action: () => unknown): string => {
      try {
        action();
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('no error thrown');
    };
    assert.equal(
      message(() => resolveConnection({ ...iot, productKey: 'a1B2c3' })),
      "ProductKey 'a1B2c3' is malformed: a ProductKey is exactly 11 letters and digits, this one has 6 characters",
    );
    assert.equal(
      message(() => resolveConnection({ ...mq, instanceId: '' })),
      'The connection needs a value for Instance ID',
    );
    assert.equal(
      message(() => resolveConnection({ ...iot, credentials: {} })),
      "The connection's credential DeviceSecret is missing",
    );
    const cloud = { mode: 'cloud' as const, credentials: { accessKeyId: 'AK', accessKeySecret: 'SK' } };
    assert.equal(
      message(() => resolveCloud(cloud)),
      'The connection needs a value for Account ID',
    );
    assert.match(
      message(() => resolveCloud({ ...cloud, amqpEndpoint: 'nonsense' })),
      /^AMQP endpoint 'nonsense' is not a valid endpoint URL/,
    );
    for (const text of [message(() => resolveCloud(cloud)), message(() => resolveConnection({ ...mq, instanceId: '' }))]) {
      assert.doesNotMatch(text, /\b(uid|instanceId|amqpEndpoint)\b/);
    }
  });

  it('the knock-off warning says what helps on each service: a device of its own on the IoT Platform, a client ID on ApsaraMQ', function () {
    const iotText = new LogMessage('KICKED_IOT', { target: 't', count: 3 }).text;
    assert.match(iotText, /one connection per device, whatever its client ID\)\. Give each program a device of its own/);
    assert.doesNotMatch(iotText, /or client ID/);
    assert.match(new LogMessage('KICKED_MQ', { target: 't', count: 3 }).text, /Give each program its own Device ID/);
  });

  it("a field left as ${NAME} (NAME unset when the flow started) names the variable, for the simulator's with how to start it", function () {
    assert.equal(
      code(() => resolveConnection({ ...iot, port: '${ALIYUN_IOT_SIM_PORT}' })),
      'SIMULATOR_VARIABLE_UNSET',
    );
    assert.equal(
      code(() =>
        resolveCloud({
          mode: 'cloud',
          amqpEndpoint: '${ALIYUN_IOT_SIM_AMQP_ENDPOINT}',
          credentials: { accessKeyId: 'AK', accessKeySecret: 'SK' },
        }),
      ),
      'SIMULATOR_VARIABLE_UNSET',
    );
    assert.equal(
      code(() => resolveConnection({ ...iot, host: '${MY_BROKER}' })),
      'VARIABLE_UNSET',
    );
    try {
      resolveConnection({ ...iot, port: '${ALIYUN_IOT_SIM_PORT}' });
    } catch (err) {
      assert.match(
        (err as Error).message,
        /^ALIYUN_IOT_SIM_PORT is not set \(the Port field says \$\{ALIYUN_IOT_SIM_PORT\}\): start the simulator with `npx aliyun-iot-sim --demo`/,
      );
    }
  });

  it('keeps secrets out of every error message', function () {
    const secret = 'Sup3r-Secret-Value';
    const attempts = [
      () => resolveConnection({ ...iot, productKey: 'bad', credentials: { deviceSecret: secret } }),
      () => resolveConnection({ ...mq, deviceId: 'a b', credentials: { accessKeyId: 'AK', accessKeySecret: secret } }),
      () => resolveConnection({ ...iot, keepalive: 1, credentials: { deviceSecret: secret } }),
    ];
    for (const attempt of attempts) {
      assert.throws(attempt, (err: Error) => !err.message.includes(secret) && !JSON.stringify(err).includes(secret));
    }
  });
});
