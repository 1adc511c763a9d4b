// The limits the help texts and the README state are the ones the code enforces: each statement is found and its
// numbers compared with the library's, so that changing a limit without its text (or the text alone) fails here.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_RECONNECT_POLICY } from '../../nodes/lib/connection';
import {
  DEFAULTS,
  IdentifierKind,
  MAX_JSON_DEPTH,
  PROPERTY_LIMITS,
  RANGES,
  SERVICE_LIMITS,
  TOO_MANY_PROPERTIES_CODE,
  matches,
} from '../../nodes/lib/protocol';
import { MAX_BACKLOG_BYTES, MAX_BACKLOG_MESSAGES } from '../../sim/consumer-groups';

const ROOT = path.join(__dirname, '..', '..', '..');

interface Statement {
  /** Whitespace in the file is read as single spaces. */
  text: RegExp;
  /** What each number the text captures must be. */
  values: number[];
}

/** The shortest and longest identifier of `kind` that `make(length)` builds and the pattern accepts. */
function lengthsOf(kind: IdentifierKind, make: (length: number) => string): [number, number] {
  const accepted = Array.from({ length: 200 }, (_unused, length) => length).filter((length) => matches(kind, make(length)));
  assert.ok(accepted.length > 0, `no length of ${kind} is accepted`);
  return [accepted[0], accepted[accepted.length - 1]];
}

const letters = (length: number): string => 'a'.repeat(length);
const groupId = (length: number): string => `GID_${'a'.repeat(Math.max(0, length - 4))}`.slice(0, length);
const seconds = (ms: number): number => ms / 1000;
const minutes = (ms: number): number => ms / 60_000;
const kilobytes = (bytes: number): number => bytes / 1024;

const iot = SERVICE_LIMITS.iot;
const mq = SERVICE_LIMITS.mq;
const policy = DEFAULT_RECONNECT_POLICY;
const iotClientIdMax = lengthsOf('iotClientId', letters)[1];
const groupIdLengths = lengthsOf('groupId', groupId);
const eventLengths = lengthsOf('eventIdentifier', letters);
const productKeyLength = lengthsOf('productKey', letters);
const deviceNameLengths = lengthsOf('deviceName', letters);
const keepalive = [DEFAULTS.keepalive, RANGES.iotKeepalive.min, RANGES.iotKeepalive.max, RANGES.mqKeepalive.min, RANGES.mqKeepalive.max];
const rrpc = [RANGES.rrpcTimeoutMs.min, RANGES.rrpcTimeoutMs.max];
const reconnect = [
  seconds(policy.networkBaseMs),
  seconds(policy.networkMaxMs),
  seconds(policy.refusedBaseMs),
  minutes(policy.refusedMaxMs),
  seconds(policy.kickedBaseMs),
  seconds(policy.kickedMaxMs),
];

const STATEMENTS: Record<string, Statement[]> = {
  'nodes/locales/en-US/aliyun-iot-connection.html': [
    { text: /up to (\d+) letters, digits and <code>- _ @ \. : &amp;<\/code>/, values: [iotClientIdMax] },
    { text: /(\d+) to (\d+) characters: <code>GID_<\/code>/, values: groupIdLengths },
    { text: /<code>GroupID@@@DeviceID<\/code>, at most (\d+) characters/, values: [RANGES.clientIdLength.max] },
    {
      text: /seconds, default (\d+)\. IoT Platform refuses values outside (\d+)–(\d+) and so does this node; ApsaraMQ allows (\d+)–(\d+)\./,
      values: keepalive,
    },
    { text: /default (\d+), 0 for none/, values: [DEFAULTS.queueSize] },
    {
      text: /retried after (\d+) s, doubling up to (\d+) s; a refused login after (\d+) s, doubling up to (\d+) minutes; a device in use elsewhere after (\d+) s, doubling up to (\d+) s/,
      values: reconnect,
    },
  ],
  'nodes/locales/zh-CN/aliyun-iot-connection.html': [
    { text: /最多 (\d+) 位字母、数字及 <code>- _ @ \. : &amp;<\/code>/, values: [iotClientIdMax] },
    { text: /(\d+)~(\d+) 个字符，以 <code>GID_<\/code>/, values: groupIdLengths },
    { text: /<code>GroupID@@@DeviceID<\/code>，最多 (\d+) 个字符/, values: [RANGES.clientIdLength.max] },
    {
      text: /默认 (\d+)。物联网平台会拒绝 (\d+)~(\d+) 秒以外的取值，本节点同样拒绝；云消息队列 MQTT 版允许 (\d+)~(\d+) 秒/,
      values: keepalive,
    },
    { text: /默认 (\d+)，0 表示不排队/, values: [DEFAULTS.queueSize] },
    {
      text: /连接意外断开后 (\d+) 秒重试，间隔逐次加倍，最长 (\d+) 秒；登录被拒绝后 (\d+) 秒重试，最长 (\d+) 分钟；设备在别处登录时 (\d+) 秒重试，最长 (\d+) 秒/,
      values: reconnect,
    },
  ],
  'nodes/locales/en-US/aliyun-iot-in.html': [
    {
      text: /topics of up to (\d+) characters and (\d+) subscriptions per device; ApsaraMQ allows (\d+) characters and (\d+) subscriptions/,
      values: [iot.maxTopicLength, iot.maxSubscriptions, mq.maxTopicLength, mq.maxSubscriptions],
    },
  ],
  'nodes/locales/zh-CN/aliyun-iot-in.html': [
    {
      text: /Topic 最长 (\d+) 个字符，每个设备最多 (\d+) 个订阅；云消息队列 MQTT 版的 Topic 最长 (\d+) 个字符，每个客户端最多 (\d+) 个订阅/,
      values: [iot.maxTopicLength, iot.maxSubscriptions, mq.maxTopicLength, mq.maxSubscriptions],
    },
  ],
  'nodes/locales/en-US/aliyun-iot-out.html': [
    {
      text: /at most (\d+) characters on IoT Platform and (\d+) on ApsaraMQ; the payload at most (\d+) KB on IoT Platform and (\d+) KB on ApsaraMQ/,
      values: [iot.maxTopicLength, mq.maxTopicLength, kilobytes(iot.maxPayloadBytes), kilobytes(mq.maxPayloadBytes)],
    },
  ],
  'nodes/locales/zh-CN/aliyun-iot-out.html': [
    {
      text: /Topic 最长 (\d+) 个字符、消息体最大 (\d+) KB；云消息队列 MQTT 版的 Topic 最长 (\d+) 个字符、消息体最大 (\d+) KB/,
      values: [iot.maxTopicLength, kilobytes(iot.maxPayloadBytes), mq.maxTopicLength, kilobytes(mq.maxPayloadBytes)],
    },
  ],
  'nodes/locales/en-US/aliyun-iot-invoke.html': [{ text: /\((\d+)–(\d+) ms\)/, values: rrpc }],
  'nodes/locales/zh-CN/aliyun-iot-invoke.html': [{ text: /（(\d+)–(\d+) 毫秒）/, values: rrpc }],
  'nodes/locales/en-US/aliyun-iot-post.html': [{ text: /not (\d+) to (\d+) letters, digits and <code>_<\/code>/, values: eventLengths }],
  'nodes/locales/zh-CN/aliyun-iot-post.html': [{ text: /不是 (\d+)~(\d+) 位字母、数字和 <code>_<\/code>/, values: eventLengths }],
  'nodes/locales/en-US/aliyun-iot-command.html': [{ text: /waits at most (\d+) seconds/, values: [seconds(RANGES.rrpcTimeoutMs.max)] }],
  'nodes/locales/zh-CN/aliyun-iot-command.html': [{ text: /最多等待 (\d+) 秒/, values: [seconds(RANGES.rrpcTimeoutMs.max)] }],
  'nodes/locales/en-US/aliyun-iot-reply.html': [
    { text: /the time the cloud waits, at most (\d+) seconds/, values: [seconds(RANGES.rrpcTimeoutMs.max)] },
  ],
  'nodes/locales/zh-CN/aliyun-iot-reply.html': [
    { text: /云端的等待时间内响应，最长 (\d+) 秒/, values: [seconds(RANGES.rrpcTimeoutMs.max)] },
  ],
  'docs/simulator.md': [
    {
      text: /a post of more than ([\d,]+) properties is refused whole \(code (\d+), `map size must less than ([\d,]+)`/,
      values: [PROPERTY_LIMITS.perPost, TOO_MANY_PROPERTIES_CODE, PROPERTY_LIMITS.perPost],
    },
    {
      text: /at most (\d+) characters, optionally `functionBlockId:` first\) or whose value nests more than ([\d,]+) levels or takes more than ([\d,]+) bytes as JSON \(the TSL's longest text, ([\d,]+) characters, at (\d+) bytes each\)/,
      values: [
        PROPERTY_LIMITS.identifierLength,
        MAX_JSON_DEPTH,
        PROPERTY_LIMITS.valueBytes,
        PROPERTY_LIMITS.textLength,
        PROPERTY_LIMITS.valueBytes / PROPERTY_LIMITS.textLength,
      ],
    },
    { text: /a device keeps at most (\d+) properties/, values: [PROPERTY_LIMITS.perDevice] },
    {
      text: /up to ([\d,]+) messages and (\d+) MB of payloads and topics/,
      values: [MAX_BACKLOG_MESSAGES, MAX_BACKLOG_BYTES / 1024 / 1024],
    },
    {
      text: /taken within (\d+)–(\d+) s as the platform does \((\d+) s when it announced none\)/,
      values: [seconds(RANGES.amqpIdleTimeoutMs.min), seconds(RANGES.amqpIdleTimeoutMs.max), seconds(RANGES.amqpIdleTimeoutMs.max)],
    },
  ],
  'README.md': [
    {
      text: /It announces an idle-time-out of (\d+) s \(the platform takes (\d+)–(\d+) s/,
      values: [seconds(policy.amqpIdleTimeoutMs), seconds(RANGES.amqpIdleTimeoutMs.min), seconds(RANGES.amqpIdleTimeoutMs.max)],
    },
    {
      text: /ProductKey is (\d+) letters and digits, DeviceName (\d+)–(\d+) of letters/,
      values: [productKeyLength[1], ...deviceNameLengths],
    },
    { text: /`clientId` \| iot: optional, up to (\d+) characters/, values: [iotClientIdMax] },
    { text: /`GroupID@@@DeviceID` \(at most (\d+) characters/, values: [RANGES.clientIdLength.max] },
    { text: /`keepalive` \| seconds, default (\d+); the IoT Platform refuses values outside (\d+)–(\d+)/, values: keepalive.slice(0, 3) },
    { text: /offline \(default (\d+); 0 = none\)/, values: [DEFAULTS.queueSize] },
    { text: /\| topic length \| (\d+) characters \| (\d+) characters \|/, values: [iot.maxTopicLength, mq.maxTopicLength] },
    { text: /\| payload \| (\d+) KB \| (\d+) KB \|/, values: [kilobytes(iot.maxPayloadBytes), kilobytes(mq.maxPayloadBytes)] },
    { text: /\| subscriptions per client \| (\d+) \| (\d+) \|/, values: [iot.maxSubscriptions, mq.maxSubscriptions] },
    { text: /\| keepalive \| (\d+)–(\d+) s \| (\d+)–(\d+) s \|/, values: keepalive.slice(1) },
    {
      text: /ProductKey (\d+) letters\/digits; DeviceName (\d+)–(\d+) characters; client id ≤ (\d+) \| GroupID `GID_…`\/`GID-…`, (\d+)–(\d+) characters; `GroupID@@@DeviceID` ≤ (\d+)/,
      values: [productKeyLength[1], ...deviceNameLengths, iotClientIdMax, ...groupIdLengths, RANGES.clientIdLength.max],
    },
    { text: /`timeout` \((\d+)–(\d+) ms\)/, values: rrpc },
    { text: /offline queue of `queueSize` messages \((\d+) by default\)/, values: [DEFAULTS.queueSize] },
    { text: /`queueSize` messages \(default (\d+)\)/, values: [DEFAULTS.queueSize] },
    { text: /ApsaraMQ drops payloads over (\d+) KB/, values: [kilobytes(mq.maxPayloadBytes)] },
    {
      text: /Lost connections are retried after (\d+) s, doubling to (\d+) s; refused logins after (\d+) s, doubling to (\d+) minutes/,
      values: reconnect.slice(0, 4),
    },
    {
      text: /network failures from (\d+) s up to (\d+) s; refused logins \(the status says which refusal\) from (\d+) s up to (\d+) minutes/,
      values: reconnect.slice(0, 4),
    },
    {
      text: /within (\d+) s of connecting gets the status \*in use elsewhere\*, a warning that says what to do, and a back-off from (\d+) s up to (\d+) s/,
      values: [seconds(policy.shortSessionMs), ...reconnect.slice(4)],
    },
  ],
};

function read(file: string): string {
  return fs.readFileSync(path.join(ROOT, file), 'utf8').replace(/\s+/g, ' ');
}

describe('limits stated in the help texts and the README', function () {
  for (const [file, statements] of Object.entries(STATEMENTS)) {
    it(file, function () {
      const text = read(file);
      for (const statement of statements) {
        const match = statement.text.exec(text);
        assert.ok(match, `${file} no longer says ${statement.text}: reword the test with the text`);
        assert.deepEqual(
          match.slice(1).map((number) => Number(number.replace(/,/g, ''))),
          statement.values,
          `${file}: "${match[0]}"`,
        );
      }
    });
  }

  it('every payload size in the help texts is a service limit', function () {
    const sizes = [kilobytes(iot.maxPayloadBytes), kilobytes(mq.maxPayloadBytes)];
    for (const language of fs.readdirSync(path.join(ROOT, 'nodes', 'locales'))) {
      for (const file of fs.readdirSync(path.join(ROOT, 'nodes', 'locales', language)).filter((name) => name.endsWith('.html'))) {
        for (const [, size] of read(path.join('nodes', 'locales', language, file)).matchAll(/(\d+) ?KB/g)) {
          assert.ok(sizes.includes(Number(size)), `${language}/${file} states ${size} KB`);
        }
      }
    }
  });
});
