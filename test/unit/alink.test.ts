import { strict as assert } from 'node:assert';
import {
  HistoryBatch,
  METHODS,
  SERVICE_LIMITS,
  THING_POST_LIMITS,
  buildAnswer,
  buildPost,
  parseThingTopic,
  readCommand,
  readPropertyPost,
  readReply,
  thingTopics,
} from '../../nodes/lib/protocol';
import { AlinkIds } from '../../nodes/lib/connection';
import { AliyunIotError } from '../../nodes/lib/errors';
import { compileCondition } from '../../sim/condition';
import { RuleEngine, wildcardCaptures } from '../../sim/rules';

const device = { productKey: 'a1B2c3D4e5F', deviceName: 'dev01' };

describe('alink: topics', function () {
  it('builds and reads back every row of the thing-model table', function () {
    const rows: Array<[string, Record<string, string>]> = [
      [thingTopics.propertyPost(device), { type: 'post', eventId: 'property' }],
      [thingTopics.eventPost(device, 'overheat'), { type: 'post', eventId: 'overheat' }],
      [thingTopics.replyTo(thingTopics.eventPost(device, 'overheat')), { type: 'post-reply', eventId: 'overheat' }],
      [thingTopics.propertySet(device), { type: 'property-set' }],
      [thingTopics.replyTo(thingTopics.propertySet(device)), { type: 'property-set-reply' }],
      [thingTopics.service(device, 'reboot'), { type: 'service', serviceId: 'reboot' }],
      [thingTopics.replyTo(thingTopics.service(device, 'reboot')), { type: 'service-reply', serviceId: 'reboot' }],
      [thingTopics.rrpcRequest(device, '123'), { type: 'rrpc-request', messageId: '123' }],
      [thingTopics.rrpcResponse(device, '123'), { type: 'rrpc-response', messageId: '123' }],
      [thingTopics.extRrpc(device, '9', 'reboot'), { type: 'ext-rrpc', messageId: '9', serviceId: 'reboot' }],
      [
        thingTopics.customRrpc('9', '/a1B2c3D4e5F/dev01/user/rpc'),
        { type: 'custom-rrpc', messageId: '9', customTopic: '/a1B2c3D4e5F/dev01/user/rpc' },
      ],
      [thingTopics.historyPost(device), { type: 'history-post' }],
      [thingTopics.replyTo(thingTopics.historyPost(device)), { type: 'history-post-reply' }],
      [thingTopics.ntpRequest(device), { type: 'ntp-request' }],
      [thingTopics.ntpResponse(device), { type: 'ntp-response' }],
    ];
    for (const [topic, expected] of rows) assert.deepEqual(parseThingTopic(topic), { ...device, ...expected }, topic);
    assert.equal(thingTopics.propertyPost(device), '/sys/a1B2c3D4e5F/dev01/thing/event/property/post');
    assert.equal(thingTopics.extRrpc(device, '9', 'reboot'), '/ext/rrpc/9/sys/a1B2c3D4e5F/dev01/thing/service/reboot');
    assert.equal(thingTopics.shadowUpdate(device), '/shadow/update/a1B2c3D4e5F/dev01');
    assert.equal(thingTopics.otaUpgrade(device), '/ota/device/upgrade/a1B2c3D4e5F/dev01');
    for (const other of [
      '/a1B2c3D4e5F/dev01/user/get',
      '/sys/pk/dn/thing/other/x',
      '/sys/pk/dn/thing/event/property/history/x',
      '/ext/rrpc/1/x',
      '/sys/pk',
    ]) {
      assert.equal(parseThingTopic(other), undefined, other);
    }
  });
});

describe('alink: ids and waiting', function () {
  it('issues digit strings within 32 bits, unique per connection', function () {
    const ids = new AlinkIds(Date.UTC(2026, 0, 1, 23, 59, 59, 999));
    const taken = new Set(Array.from({ length: 1000 }, () => ids.take()));
    assert.equal(taken.size, 1000);
    for (const id of taken) assert.ok(/^[0-9]+$/.test(id) && Number(id) < 2 ** 32, id);
  });

  it('never hands out one id twice in a process, however many generators there are and whenever they were made', function () {
    const generators = Array.from({ length: 5 }, () => new AlinkIds());
    const taken = generators.flatMap((ids) => Array.from({ length: 100 }, () => ids.take()));
    assert.equal(new Set(taken).size, taken.length);
  });

  it('reads replies with string or numeric ids, verbatim', function () {
    assert.deepEqual(readReply(Buffer.from('{"code":200,"data":{},"id":"1|exp-topic|/x","message":"success"}')), {
      id: '1|exp-topic|/x',
      code: 200,
      data: {},
      message: 'success',
      method: undefined,
    });
    assert.equal(readReply(Buffer.from('{"code":200,"id":42}'))?.id, '42');
    assert.equal(readReply(Buffer.from('not json')), undefined);
    assert.equal(readReply(Buffer.from('{"code":200}')), undefined);
  });
});

describe('alink: posts', function () {
  it('builds property and event posts', function () {
    const property = buildPost(device, '7', { kind: 'property', params: { temp: 21.5, hum: { value: 40, time: 1 } }, ack: true });
    assert.equal(property.topic, '/sys/a1B2c3D4e5F/dev01/thing/event/property/post');
    assert.deepEqual(JSON.parse(property.payload), {
      id: '7',
      version: '1.0',
      sys: { ack: 1 },
      params: { temp: 21.5, hum: { value: 40, time: 1 } },
      method: 'thing.event.property.post',
    });
    const event = buildPost(device, '8', { kind: 'event', eventId: 'overheat', params: { level: 3 }, ack: false });
    const body = JSON.parse(event.payload);
    assert.equal(event.method, 'thing.event.overheat.post');
    assert.deepEqual(body.sys, { ack: 0 });
    assert.deepEqual(body.params.value, { level: 3 });
    assert.equal(typeof body.params.time, 'number');
    const given = JSON.parse(
      buildPost(device, '9', { kind: 'event', eventId: 'e', params: { value: { a: 1 }, time: 5 }, ack: true }).payload,
    );
    assert.deepEqual(given.params, { value: { a: 1 }, time: 5 });
  });

  it('refuses bad params and event ids', function () {
    const code = (action: () => unknown): string => {
      try {
        action();
      } catch (err) {
        return (err as AliyunIotError).code;
      }
      return 'none';
    };
    assert.equal(
      code(() => buildPost(device, '1', { kind: 'property', params: 'text', ack: true })),
      'POST_PARAMS_INVALID',
    );
    assert.equal(
      code(() => buildPost(device, '1', { kind: 'property', params: [1], ack: true })),
      'POST_PARAMS_INVALID',
    );
    assert.equal(
      code(() => buildPost(device, '1', { kind: 'event', params: {}, ack: true })),
      'EVENT_ID_INVALID',
    );
    assert.equal(
      code(() => buildPost(device, '1', { kind: 'event', eventId: 'a/b', params: {}, ack: true })),
      'EVENT_ID_INVALID',
    );
  });
});

describe('alink: commands and answers', function () {
  const request = (method: string, params: unknown): Buffer => Buffer.from(JSON.stringify({ id: '55', version: '1.0', method, params }));

  it('reads each kind of request with its reply route', function () {
    const set = readCommand(device, thingTopics.propertySet(device), request('thing.service.property.set', { light: 1 }));
    assert.deepEqual(set, {
      payload: { light: 1 },
      method: 'thing.service.property.set',
      service: 'property.set',
      alink: { id: '55', topic: thingTopics.propertySet(device), replyTopic: `${thingTopics.propertySet(device)}_reply`, kind: 'set' },
    });
    const async = readCommand(device, thingTopics.service(device, 'reboot'), request('thing.service.reboot', { delay: 1 }));
    assert.equal(async?.alink.kind, 'async');
    assert.equal(async?.alink.replyTopic, '/sys/a1B2c3D4e5F/dev01/thing/service/reboot_reply');
    const ext = readCommand(device, thingTopics.extRrpc(device, '77', 'reboot'), request('thing.service.reboot', {}));
    assert.deepEqual(
      [ext?.alink.kind, ext?.alink.replyTopic, ext?.alink.messageId, ext?.service],
      ['ext-rrpc', thingTopics.extRrpc(device, '77', 'reboot'), '77', 'reboot'],
    );
    const classic = readCommand(device, thingTopics.rrpcRequest(device, '88'), request('thing.service.reboot', {}));
    assert.deepEqual(
      [classic?.alink.kind, classic?.alink.replyTopic, classic?.service],
      ['rrpc', thingTopics.rrpcResponse(device, '88'), 'reboot'],
    );
    const raw = readCommand(device, thingTopics.rrpcRequest(device, '89'), Buffer.from('ping'));
    assert.deepEqual(raw, {
      payload: 'ping',
      alink: {
        topic: thingTopics.rrpcRequest(device, '89'),
        replyTopic: thingTopics.rrpcResponse(device, '89'),
        kind: 'rrpc',
        messageId: '89',
      },
    });
    const custom = readCommand(device, '/ext/rrpc/90/a1B2c3D4e5F/dev01/user/rpc', Buffer.from('{"x":1}'));
    assert.deepEqual(
      [custom?.alink.kind, custom?.alink.replyTopic, custom?.payload],
      ['custom-rrpc', '/ext/rrpc/90/a1B2c3D4e5F/dev01/user/rpc', { x: 1 }],
    );
  });

  it("ignores answers and other devices' topics; malformed requests are errors", function () {
    assert.equal(readCommand(device, `${thingTopics.service(device, 'reboot')}_reply`, Buffer.from('{"id":"1","code":200}')), undefined);
    assert.equal(readCommand(device, thingTopics.propertySet({ ...device, deviceName: 'dev02' }), request('x', {})), undefined);
    assert.throws(() => readCommand(device, thingTopics.propertySet(device), Buffer.from('not json')), /not a valid Alink request/);
    assert.throws(() => readCommand(device, thingTopics.service(device, 'x'), Buffer.from('{"params":{}}')), /not a valid Alink request/);
  });

  it('answers Alink requests with {id, code, data, message?} and raw RRPC with raw bytes', function () {
    const context = { id: '55', topic: 't', replyTopic: 't_reply', kind: 'async' as const };
    assert.deepEqual(JSON.parse(buildAnswer(context, 200, { ok: true }).payload as string), { id: '55', code: 200, data: { ok: true } });
    assert.deepEqual(JSON.parse(buildAnswer(context, 460, undefined, 'bad').payload as string), {
      id: '55',
      code: 460,
      data: {},
      message: 'bad',
    });
    assert.deepEqual(buildAnswer({ topic: 'q', replyTopic: 'r', kind: 'rrpc', messageId: '1' }, 200, 'pong'), {
      topic: 'r',
      payload: 'pong',
    });
    assert.throws(() => buildAnswer({ kind: 'set' }, 200, {}), /msg.alink is missing or incomplete/);
    assert.throws(() => buildAnswer(undefined, 200, {}), /msg.alink is missing or incomplete/);
  });
});

describe('simulator: rule conditions and forwarding', function () {
  it('evaluates the condition language without eval', function () {
    const cases: Array<[string, unknown, boolean]> = [
      ['temp > 30', { temp: 31 }, true],
      ['temp > 30', { temp: 30 }, false],
      ['temp > 30', { temp: '31' }, false],
      ["temp >= 30 and status == 'on'", { temp: 30, status: 'on' }, true],
      ['temp >= 30 && status = "on"', { temp: 30, status: 'off' }, false],
      ['not (a < 1 or b != 2)', { a: 1, b: 2 }, true],
      ['!flag', { flag: false }, true],
      ['params.temp.value <= -1.5e1', { params: { temp: { value: -20 } } }, true],
      ['missing == null', {}, false],
      ['missing != 3', {}, true],
      ["name <> 'x' || count > 10", { name: 'x', count: 11 }, true],
      ['enabled', { enabled: true }, true],
    ];
    for (const [source, payload, expected] of cases) assert.equal(compileCondition(source)(payload), expected, source);
    for (const bad of ['temp >', 'temp > > 3', '(a == 1', "a == 'x", 'a ; b', 'and']) {
      assert.throws(() => compileCondition(bad), Error, bad);
    }
    assert.equal(compileCondition('constructor.name == "Object"')({}), false, 'only own fields are read');
  });

  it('captures wildcards and builds forwarded messages', function () {
    assert.deepEqual(wildcardCaptures('/pk/+/user/#', '/pk/dev01/user/a/b'), ['dev01', 'a/b']);
    assert.equal(wildcardCaptures('/pk/+/user/get', '/pk/dev01/user/update'), undefined);
    const engine = new RuleEngine([
      { from: '/pk/+/user/update', to: '/pk/dev02/user/get', select: ['temp', 'meta.site as site'], where: 'temp > 30' },
      { from: '/pk/+/user/update', to: '/pk/${1}/user/echo/${deviceName}' },
    ]);
    const source = { productKey: 'pk', deviceName: 'dev01' };
    const hot = engine.apply(source, '/pk/dev01/user/update', Buffer.from('{"temp":35,"hum":50,"meta":{"site":"A"}}'), 1);
    assert.deepEqual(
      hot.map((message) => [message.topic, message.payload.toString(), message.qos]),
      [
        ['/pk/dev02/user/get', '{"temp":35,"site":"A"}', 1],
        ['/pk/dev01/user/echo/dev01', '{"temp":35,"hum":50,"meta":{"site":"A"}}', 1],
      ],
    );
    assert.equal(engine.apply(source, '/pk/dev01/user/update', Buffer.from('{"temp":20}'), 0).length, 1);
    assert.equal(engine.apply(source, '/pk/dev01/user/update', Buffer.from('not json'), 0).length, 1);
    assert.throws(() => engine.replace([{ from: '/a/#', to: '/b', where: 'x >' }]), /rules\[0\]\.where/);
    assert.equal(engine.list().length, 2, 'a bad replacement changes nothing');
  });
});

describe('alink: history posts of queued property posts', function () {
  const queuedAt = 1_700_000_000_000;
  const posted = (target: typeof device, params: Record<string, unknown>, id = '1'): string =>
    buildPost(target, id, { kind: 'property', params, ack: true }).payload;

  it('reads a queued property post back with a time for every value, and nothing else', function () {
    const topic = thingTopics.propertyPost(device);
    assert.deepEqual(readPropertyPost(topic, posted(device, { a: 1, b: { value: 'x', time: 5 }, c: { x: 1 } }, '7'), queuedAt), {
      device,
      id: '7',
      properties: { a: { value: 1, time: queuedAt }, b: { value: 'x', time: 5 }, c: { value: { x: 1 }, time: queuedAt } },
    });
    assert.equal(readPropertyPost(thingTopics.eventPost(device, 'alarm'), posted(device, { a: 1 }), queuedAt), undefined);
    assert.equal(readPropertyPost(topic, 'not json', queuedAt), undefined);
    assert.equal(readPropertyPost(topic, posted(device, {}), queuedAt), undefined);
    assert.equal(readPropertyPost(topic, JSON.stringify({ id: '1', method: 'thing.other', params: { a: 1 } }), queuedAt), undefined);
  });

  it('batches posts per device within 200 properties, 20 devices and the payload limit', function () {
    const post = (deviceName: string, count: number) =>
      readPropertyPost(
        thingTopics.propertyPost({ ...device, deviceName }),
        posted({ ...device, deviceName }, Object.fromEntries(Array.from({ length: count }, (_, i) => [`p${i}`, i]))),
        queuedAt,
      ) as NonNullable<ReturnType<typeof readPropertyPost>>;
    const bytes = SERVICE_LIMITS.iot.maxPayloadBytes;
    const byProperties = new HistoryBatch(bytes);
    byProperties.add(post('dev01', 150));
    assert.equal(byProperties.fits(post('dev01', THING_POST_LIMITS.properties - 150)), true);
    assert.equal(byProperties.fits(post('dev01', THING_POST_LIMITS.properties - 149)), false);
    const byDevices = new HistoryBatch(bytes);
    for (let i = 0; i < THING_POST_LIMITS.devices; i++) byDevices.add(post(`dev${String(i).padStart(2, '0')}`, 1));
    assert.equal(byDevices.fits(post('dev00', 1)), true, 'a device already in the post');
    assert.equal(byDevices.fits(post('other', 1)), false, 'one device too many');
    const bySize = new HistoryBatch(400);
    bySize.add(post('dev01', 10));
    assert.equal(bySize.fits(post('dev01', 10)), false);
    assert.equal(new HistoryBatch(10).fits(post('dev01', 10)), true, 'the first post always goes');

    const batch = new HistoryBatch(bytes);
    batch.add(post('dev01', 1));
    batch.add(post('dev02', 2));
    batch.add(post('dev01', 1));
    const built = batch.build(device, '42', true);
    assert.equal(built.topic, '/sys/a1B2c3D4e5F/dev01/thing/event/property/history/post');
    const body = JSON.parse(built.payload);
    assert.deepEqual([body.id, body.method, body.sys], ['42', METHODS.historyPost, { ack: 1 }]);
    assert.deepEqual(
      body.params.map((block: { identity: { deviceName: string }; properties: unknown[] }) => [
        block.identity.deviceName,
        block.properties.length,
      ]),
      [
        ['dev01', 2],
        ['dev02', 1],
      ],
    );
    assert.deepEqual(body.params[1].properties[0], { p0: { value: 0, time: queuedAt }, p1: { value: 1, time: queuedAt } });
  });
});
