// Property-based fuzzing of every simulator endpoint: generated garbage (fast-check, seeded) published by devices to
// thing-model, custom and $SYS topics, sent to the admin API, the OpenAPI and the AMQP listener. The simulator
// stays up (nothing escapes as an uncaught exception or unhandled rejection), answers client mistakes as the
// platform would (never HTTP 500), and serves a sentinel request on each endpoint afterwards.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import fc from 'fast-check';
import mqtt, { MqttClient } from 'mqtt';
import { signIotLogin, signMqLogin } from '../../nodes/lib/protocol';
import { Simulator } from '../../sim';
import { amqpConsumer, callApi, startCloudSimulator } from '../support/cloud-fixtures';
import {
  FUZZ_SEED,
  Outcome,
  catchingCrashes,
  describeValue,
  emptyOutcome,
  formatOutcomes,
  hostileValue,
  nestedJson,
  plausibleTopic,
  samples,
} from '../support/fuzz-inputs';
import { admin, waitFor } from '../support/helpers';
import { MQ_INSTANCE, PK, deviceSecret } from '../support/registry';

/** Generated inputs per endpoint; FUZZ_RUNS raises it for a longer hunt. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 120);
/** How long one request may go unanswered. */
const ANSWER_BOUND_MS = 5000;
const DEVICE = 'dev04';
/** How long the AMQP listener may take to close a connection that sent garbage and its FIN. */
const AMQP_CLOSE_BOUND_MS = 2000;

/** JSON values that break String(), Number() and JSON.stringify once parsed: deep nesting, non-callable toString. */
const hostileJsonField = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value) ?? 'null'),
  fc.constantFrom('{"toString":1}', '{"valueOf":{},"toString":{}}', '[{"toString":1}]', 'null', '"x"', '1e400'),
  fc.integer({ min: 3000, max: 6000 }).map((depth) => nestedJson(depth)),
);

/** Alink bodies with hostile fields, raw garbage bytes, and JSON texts of any shape. */
const hostileBody: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record(
      {
        id: hostileJsonField,
        code: hostileJsonField,
        params: hostileJsonField,
        time: hostileJsonField,
        deviceSendTime: hostileJsonField,
        method: fc.constantFrom('"thing.event.property.post"', '1', '{"toString":1}'),
        value: hostileJsonField,
      },
      { requiredKeys: [] },
    )
    .map((fields) => {
      const entries = Object.entries(fields);
      const params = fields.value === undefined ? [] : [`"params":{"a":${fields.value},"p":{"value":1,"time":${fields.time ?? '1'}}}`];
      return Buffer.from(
        `{${[...entries.filter(([name]) => name !== 'value').map(([name, text]) => `"${name}":${text}`), ...params].join(',')}}`,
      );
    }),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  fc.jsonValue({ maxDepth: 4 }).map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
  fc.constantFrom('null', '', '{', '[]', '"x"').map((text) => Buffer.from(text)),
);

const THING_TOPICS = [
  `/sys/${PK}/${DEVICE}/thing/event/property/post`,
  `/sys/${PK}/${DEVICE}/thing/event/alarm/post`,
  `/sys/${PK}/${DEVICE}/thing/service/property/set_reply`,
  `/sys/${PK}/${DEVICE}/thing/service/reboot_reply`,
  `/sys/${PK}/${DEVICE}/rrpc/response/1234`,
  `/ext/ntp/${PK}/${DEVICE}/request`,
  `/${PK}/${DEVICE}/user/update`,
  `/shadow/update/${PK}/${DEVICE}`,
  `/ota/device/inform/${PK}/${DEVICE}`,
  `/sys/${PK}/dev01/thing/event/property/post`,
];

/** A forwarding rule selecting a field the fuzz makes deep, and one with a condition on it. */
const RULES = [
  { name: 'select', from: `/${PK}/+/user/update`, to: `/${PK}/dev05/user/get`, select: ['params.a as a', 'id'] },
  { name: 'where', from: `/sys/${PK}/+/thing/event/property/post`, to: `/${PK}/dev05/user/get`, where: 'params.a > 1' },
];

function connectIot(sim: Simulator, deviceName: string): Promise<MqttClient> {
  const login = signIotLogin({ productKey: PK, deviceName, deviceSecret: deviceSecret(deviceName) }, { securemode: 3 });
  return mqtt.connectAsync({ host: '127.0.0.1', port: sim.port, reconnectPeriod: 0, ...login });
}

function connectMqToken(sim: Simulator): Promise<MqttClient> {
  const login = signMqLogin({
    authMode: 'token',
    instanceId: MQ_INSTANCE,
    clientId: 'GID_test@@@fuzzsim',
    accessKeyId: 'AK',
    token: 'tok1',
  });
  return mqtt.connectAsync({ host: '127.0.0.1', port: sim.port, reconnectPeriod: 0, ...login });
}

type Answer = 'answered' | 'failed' | 'none';

/** Resolves with whether the promise settled within the bound. */
async function within(promise: Promise<unknown>, ms: number): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'none'>((resolve) => {
    timer = setTimeout(() => resolve('none'), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => 'answered' as const,
        () => 'failed' as const,
      ),
      bound,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A QoS 1 publish: answered at its PUBACK, failed when the broker closes the connection instead. */
function published(client: MqttClient, topic: string, body: Buffer): Promise<Answer> {
  const closed = new Promise<'failed'>((resolve) => client.once('close', () => resolve('failed')));
  return within(
    Promise.race([
      client.publishAsync(topic, body, { qos: 1 }),
      closed.then(() => {
        throw new Error('closed');
      }),
    ]),
    ANSWER_BOUND_MS,
  );
}

/** After this many unanswered inputs in a row an endpoint counts as down: its remaining inputs are not sent and count as unanswered. */
const DOWN_AFTER = 3;

function tally(outcome: Outcome, result: Answer): void {
  if (result === 'answered') outcome.done++;
  else if (result === 'failed') outcome.doneWithError++;
  else outcome.none++;
}

describe('fuzz: every simulator endpoint survives garbage and still serves', function () {
  this.timeout(120_000);
  let sim: Simulator;
  const clients: MqttClient[] = [];
  before(async function () {
    // A connection that never logs in is closed soon: the raw AMQP inputs wait for that.
    sim = await startCloudSimulator({ rules: RULES, amqpAuthTimeoutMs: 300 });
  });
  after(async function () {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await sim.stop();
  });

  it(`${RUNS} generated inputs per endpoint, then a sentinel request on each`, async function () {
    const outcomes: Record<string, Outcome> = {};
    const badAnswers: string[] = [];
    const serverError = (name: string, what: string): void => {
      outcomes[name].http500++;
      badAnswers.push(what);
    };
    /** Runs the inputs of one endpoint, counting crashes seen meanwhile. */
    const endpoint = async <T>(
      name: string,
      inputs: T[],
      send: (input: T) => Promise<Answer>,
      seen: unknown[],
      downAfter = DOWN_AFTER,
    ): Promise<void> => {
      const outcome = emptyOutcome();
      outcomes[name] = outcome;
      const before = seen.length;
      let unansweredInARow = 0;
      for (const input of inputs) {
        const answer = unansweredInARow >= downAfter ? 'none' : await send(input);
        unansweredInARow = answer === 'none' ? unansweredInARow + 1 : 0;
        tally(outcome, answer);
      }
      outcome.crashes = seen.length - before;
    };
    let device: MqttClient | undefined;
    const deviceClient = async (): Promise<MqttClient> => {
      if (!device?.connected) {
        device = await connectIot(sim, DEVICE);
        clients.push(device);
      }
      return device;
    };

    const { crashes } = await catchingCrashes(async (seen) => {
      // MQTT: devices publish garbage to thing-model, custom and platform topics.
      const thingInputs = samples(
        fc.tuple(
          fc.oneof({ arbitrary: fc.constantFrom(...THING_TOPICS), weight: 4 }, { arbitrary: plausibleTopic, weight: 1 }),
          hostileBody,
        ),
        RUNS,
        100,
      );
      await endpoint(
        'mqtt: thing topics',
        thingInputs,
        async ([topic, body]) => {
          return published(await deviceClient(), topic, body);
        },
        seen,
      );

      let mq: MqttClient | undefined;
      const tokenInputs = samples(
        fc.oneof(
          hostileBody,
          fc
            .record({ token: hostileValue, type: hostileValue }, { requiredKeys: [] })
            .map((request) => Buffer.from(describeValue(request))),
        ),
        RUNS,
        101,
      );
      await endpoint(
        'mqtt: $SYS/uploadToken',
        tokenInputs,
        async (body) => {
          if (!mq?.connected) {
            mq = await connectMqToken(sim);
            clients.push(mq);
          }
          return published(mq, '$SYS/uploadToken', body);
        },
        seen,
      );

      // The admin API: any method, path and body.
      const adminPaths = fc.oneof(
        fc.constantFrom(
          '/devices',
          `/devices/${PK}/${DEVICE}/properties`,
          `/devices/${PK}/%E0%A4%A/properties`,
          '/pub',
          '/properties/set',
          '/services/invoke',
          '/rrpc',
          '/mq/tokens',
          '/mq/tokens/revoke',
          '/rules',
          '/nope',
          '/?a=%',
          '//',
          '///x',
          `/gateways/${PK}/%E0%A4%A/topology`,
        ),
        fc.webPath(),
      );
      const adminInputs = samples(
        fc.record({
          method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
          path: adminPaths,
          body: fc.oneof(
            fc.constant(undefined),
            fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value) ?? ''),
            fc.string(),
            fc
              .record(
                {
                  topic: plausibleTopic,
                  payload: fc.string(),
                  productKey: fc.constantFrom(PK, 'x'),
                  deviceName: fc.constantFrom('dev07', DEVICE),
                  items: fc.jsonValue({ maxDepth: 2 }),
                  rules: fc.jsonValue({ maxDepth: 2 }),
                  timeout: fc.jsonValue({ maxDepth: 1 }),
                },
                { requiredKeys: [] },
              )
              .map((body) => JSON.stringify(body)),
          ),
        }),
        RUNS,
        102,
      );
      await endpoint(
        'admin API',
        adminInputs,
        async (input) => {
          const request = fetch(`http://127.0.0.1:${sim.adminPort}${input.path}`, {
            method: input.method,
            headers: { 'content-type': 'application/json' },
            body: input.method === 'GET' ? undefined : input.body,
          }).then(async (response) => {
            await response.arrayBuffer();
            if (response.status >= 500) serverError('admin API', `admin ${input.method} ${input.path}: ${response.status}`);
          });
          return within(request, ANSWER_BOUND_MS);
        },
        seen,
      );

      // The OpenAPI: unsigned garbage, and signed calls of every action with generated parameters.
      const rawInputs = samples(
        fc.record({
          method: fc.constantFrom('GET', 'POST', 'PUT'),
          path: fc.oneof(fc.constantFrom('/', '//', '///x', '/?Action=Pub', '/?a=%E0%A4%A', '/?%'), fc.webPath()),
          body: fc.string({ maxLength: 200 }),
          authorization: fc.oneof(
            fc.constant(undefined),
            fc.constantFrom('ACS3-HMAC-SHA256 Credential=x', 'ACS3-', 'Bearer x'),
            fc.string({ maxLength: 40 }),
          ),
        }),
        RUNS,
        103,
      );
      await endpoint(
        'openapi: unsigned',
        rawInputs,
        async (input) => {
          const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
          if (input.authorization !== undefined) headers.authorization = input.authorization.replace(/[^\x20-\x7e]/g, '');
          const request = fetch(`http://127.0.0.1:${sim.apiPort}${input.path}`, {
            method: input.method,
            headers,
            body: input.method === 'GET' ? undefined : input.body,
          }).then(async (response) => {
            await response.arrayBuffer();
            if (response.status >= 500) serverError('openapi: unsigned', `openapi ${input.method} ${input.path}: ${response.status}`);
          });
          return within(request, ANSWER_BOUND_MS);
        },
        seen,
      );

      const text = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('', '0', '1', '1000', '-1', 'dev07', PK));
      const signedInputs = samples(
        fc.record({
          action: fc.constantFrom('Pub', 'RRpc', 'SetDeviceProperty', 'InvokeThingService', 'Nope'),
          params: fc.record(
            {
              ProductKey: fc.oneof(fc.constant(PK), text),
              DeviceName: fc.oneof(fc.constant('dev07'), text),
              TopicFullName: fc.oneof(plausibleTopic, text),
              MessageContent: fc.oneof(fc.base64String({ maxLength: 40 }), text),
              Qos: text,
              Timeout: text,
              Topic: fc.oneof(plausibleTopic, text),
              RequestBase64Byte: fc.oneof(fc.base64String({ maxLength: 40 }), text),
              Items: hostileJsonField,
              Args: hostileJsonField,
              Identifier: fc.oneof(fc.constantFrom('getStatus', 'reboot'), text),
              IotInstanceId: text,
            },
            { requiredKeys: [] },
          ),
        }),
        RUNS,
        104,
      );
      await endpoint(
        'openapi: signed',
        signedInputs,
        async (input) => {
          const request = callApi(sim, input.action, input.params).then((answer) => {
            if (answer.status >= 500)
              serverError(
                'openapi: signed',
                `openapi ${input.action} ${describeValue(input.params)}: ${answer.status} ${describeValue(answer.body)}`,
              );
          });
          return within(request, ANSWER_BOUND_MS);
        },
        seen,
      );

      // AMQP: garbage bytes instead of the protocol header and frames.
      const amqpInputs = samples(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
          fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.concat([Buffer.from('AMQP\x03\x01\x00\x00'), Buffer.from(bytes)])),
          fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.concat([Buffer.from('AMQP\x00\x01\x00\x00'), Buffer.from(bytes)])),
        ),
        Math.ceil(RUNS / 2),
        105,
      );
      await endpoint(
        'amqp: raw bytes',
        amqpInputs,
        async (bytes) => {
          const socket = net.connect(sim.amqpPort, '127.0.0.1', () => socket.end(bytes));
          socket.on('error', () => undefined);
          // Reads what the listener answers: a socket that does not read never sees the listener close it.
          socket.resume();
          const answer = await within(new Promise((resolve) => socket.on('close', resolve)), AMQP_CLOSE_BOUND_MS);
          socket.destroy();
          return answer;
        },
        seen,
        Infinity,
      );

      // Sentinels: each endpoint still serves.
      const sentinel = await connectIot(sim, 'dev06');
      clients.push(sentinel);
      await sentinel.subscribeAsync(`/sys/${PK}/dev06/thing/event/property/post_reply`, { qos: 1 });
      const replies: string[] = [];
      sentinel.on('message', (_topic, payload) => replies.push(payload.toString()));
      await sentinel.publishAsync(
        `/sys/${PK}/dev06/thing/event/property/post`,
        JSON.stringify({ id: '42', version: '1.0', params: { t: 1 }, method: 'thing.event.property.post' }),
        { qos: 1 },
      );
      await waitFor(
        () => replies.some((reply) => (JSON.parse(reply) as { id?: string }).id === '42'),
        'the post_reply to the sentinel post',
      );
      const devices = await admin<{ devices: unknown[] }>(sim, 'GET', '/devices');
      assert.ok(devices.devices.length > 0, 'the admin API lists devices');
      const pub = await callApi(sim, 'Pub', {
        ProductKey: PK,
        TopicFullName: `/${PK}/dev06/user/get`,
        MessageContent: Buffer.from('hi').toString('base64'),
      });
      assert.equal(pub.body.Success, true, 'the OpenAPI answers a Pub');
      const consumer = amqpConsumer(sim, { clientId: 'fuzz-sentinel' });
      await consumer.ready;
      await consumer.close();
    });
    console.log(
      formatOutcomes('simulator endpoints (done = answered, doneWithError = refused or closed)', outcomes, [
        'done',
        'doneWithError',
        'none',
        'crashes',
        'http500',
      ]),
    );
    const failures = Object.entries(outcomes).filter(([, outcome]) => outcome.crashes + outcome.http500 + outcome.none > 0);
    assert.deepEqual(
      { failures, badAnswers: badAnswers.slice(0, 10) },
      { failures: [], badAnswers: [] },
      [
        `FUZZ_SEED=${FUZZ_SEED}: unanswered inputs, answers of HTTP 500, or crashes`,
        ...crashes
          .slice(0, 5)
          .map((crash) => `crash: ${crash instanceof Error ? crash.stack?.split('\n').slice(0, 4).join(' | ') : describeValue(crash)}`),
      ].join('\n'),
    );
  });
});
