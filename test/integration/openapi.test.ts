import { strict as assert } from 'node:assert';
import { MqttClient } from 'mqtt';
import { apiTimestamp } from '../../nodes/lib/protocol';
import { ApiAnswer, callApi, cloudSimulatorWithDevice, subscribe } from '../support/cloud-fixtures';
import { PK } from '../support/registry';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

function nextMessage(client: MqttClient, timeoutMs = 2000): Promise<{ topic: string; payload: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message arrived')), timeoutMs);
    client.once('message', (topic, payload) => {
      clearTimeout(timer);
      resolve({ topic, payload: payload.toString() });
    });
  });
}

function assertFailure(answer: ApiAnswer, status: number, code: string): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body.Success, false);
  assert.equal(answer.body.Code, code);
  assert.equal(typeof answer.body.ErrorMessage, 'string');
  assert.match(String(answer.body.RequestId), /^[0-9A-F-]{36}$/);
}

function assertSuccess(answer: ApiAnswer): void {
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.Success, true, JSON.stringify(answer.body));
  assert.equal(typeof answer.body.RequestId, 'string');
}

describe('simulator: OpenAPI endpoint', function () {
  const env = cloudSimulatorWithDevice('dev01');

  describe('actions', function () {
    it('Pub: publishes the Base64 content to the device topic, by POST form or GET query', async function () {
      await subscribe(env.device, `/${PK}/dev01/user/get`);
      for (const method of ['POST', 'GET'] as const) {
        const arrived = nextMessage(env.device);
        const answer = await callApi(
          env.sim,
          'Pub',
          {
            ProductKey: PK,
            TopicFullName: `/${PK}/dev01/user/get`,
            MessageContent: b64(`hello ${method}`),
            Qos: 1,
          },
          { method },
        );
        assertSuccess(answer);
        assert.match(String(answer.body.MessageId), /^\d+$/);
        assert.deepEqual(await arrived, { topic: `/${PK}/dev01/user/get`, payload: `hello ${method}` });
      }
    });

    it('RRpc: classic RRPC and custom-topic RRPC return SUCCESS with the answer; OFFLINE and TIMEOUT otherwise', async function () {
      await subscribe(env.device, `/sys/${PK}/dev01/rrpc/request/+`);
      await subscribe(env.device, `/ext/rrpc/+/${PK}/dev01/user/echo`);
      env.device.on('message', (topic, payload) => {
        if (topic.includes('/rrpc/request/')) env.device.publish(topic.replace('/request/', '/response/'), `pong:${payload}`);
        else if (topic.startsWith('/ext/rrpc/') && payload.toString() !== 'silence') env.device.publish(topic, `echo:${payload}`);
      });
      const classic = await callApi(env.sim, 'RRpc', {
        ProductKey: PK,
        DeviceName: 'dev01',
        RequestBase64Byte: b64('ping'),
        Timeout: 2000,
      });
      assertSuccess(classic);
      assert.equal(classic.body.RrpcCode, 'SUCCESS');
      assert.equal(Buffer.from(String(classic.body.PayloadBase64Byte), 'base64').toString(), 'pong:ping');
      assert.match(String(classic.body.MessageId), /^\d+$/);

      const custom = await callApi(env.sim, 'RRpc', {
        ProductKey: PK,
        DeviceName: 'dev01',
        RequestBase64Byte: b64('hi'),
        Timeout: 2000,
        Topic: `/${PK}/dev01/user/echo`,
      });
      assert.equal(custom.body.RrpcCode, 'SUCCESS');
      assert.equal(Buffer.from(String(custom.body.PayloadBase64Byte), 'base64').toString(), 'echo:hi');

      const silent = await callApi(env.sim, 'RRpc', {
        ProductKey: PK,
        DeviceName: 'dev01',
        RequestBase64Byte: b64('silence'),
        Timeout: 1000,
        Topic: `/${PK}/dev01/user/echo`,
      });
      assertSuccess(silent);
      assert.equal(silent.body.RrpcCode, 'TIMEOUT');
      assert.equal(silent.body.PayloadBase64Byte, undefined);

      const offline = await callApi(env.sim, 'RRpc', {
        ProductKey: PK,
        DeviceName: 'dev02',
        RequestBase64Byte: b64('ping'),
        Timeout: 1000,
      });
      assertSuccess(offline);
      assert.equal(offline.body.RrpcCode, 'OFFLINE');
    });

    it('SetDeviceProperty: sends thing.service.property.set to the device', async function () {
      await subscribe(env.device, `/sys/${PK}/dev01/thing/service/property/set`);
      const arrived = nextMessage(env.device);
      const answer = await callApi(env.sim, 'SetDeviceProperty', {
        ProductKey: PK,
        DeviceName: 'dev01',
        Items: JSON.stringify({ power: 1 }),
      });
      assertSuccess(answer);
      const request = JSON.parse((await arrived).payload) as { id: string; method: string; params: unknown };
      assert.equal(request.method, 'thing.service.property.set');
      assert.deepEqual(request.params, { power: 1 });
      assert.deepEqual(answer.body.Data, { MessageId: request.id });
    });

    it('InvokeThingService: an asynchronous service goes to its topic; a synchronous one by RRPC, with its data as Result', async function () {
      await subscribe(env.device, `/sys/${PK}/dev01/thing/service/+`);
      await subscribe(env.device, `/sys/${PK}/dev01/rrpc/request/+`);
      const asyncArrived = nextMessage(env.device);
      const asyncAnswer = await callApi(env.sim, 'InvokeThingService', {
        ProductKey: PK,
        DeviceName: 'dev01',
        Identifier: 'reboot',
        Args: '{"delay":3}',
      });
      assertSuccess(asyncAnswer);
      const asyncRequest = await asyncArrived;
      assert.equal(asyncRequest.topic, `/sys/${PK}/dev01/thing/service/reboot`);
      const parsed = JSON.parse(asyncRequest.payload) as { id: string; method: string; params: unknown };
      assert.equal(parsed.method, 'thing.service.reboot');
      assert.deepEqual(parsed.params, { delay: 3 });
      assert.deepEqual(asyncAnswer.body.Data, { MessageId: parsed.id });

      let code = 200;
      env.device.on('message', (topic, payload) => {
        if (!topic.includes('/rrpc/request/')) return;
        const request = JSON.parse(payload.toString()) as { id: string; method: string };
        assert.equal(request.method, 'thing.service.getStatus');
        env.device.publish(
          topic.replace('/request/', '/response/'),
          JSON.stringify({ id: request.id, code, data: { status: 'ok' }, message: 'nope' }),
        );
      });
      const sync = await callApi(env.sim, 'InvokeThingService', {
        ProductKey: PK,
        DeviceName: 'dev01',
        Identifier: 'getStatus',
        Args: '{}',
      });
      assertSuccess(sync);
      const data = sync.body.Data as { Result: string; MessageId: string };
      assert.deepEqual(JSON.parse(data.Result), { status: 'ok' });
      assert.match(data.MessageId, /^\d+$/);

      code = 460;
      const failed = await callApi(env.sim, 'InvokeThingService', {
        ProductKey: PK,
        DeviceName: 'dev01',
        Identifier: 'getStatus',
        Args: '{}',
      });
      assertFailure(failed, 200, 'iot.device.InvokeThingServiceFailed');
      assert.match(String(failed.body.ErrorMessage), /460/);
    });
  });

  describe('gateway errors', function () {
    const pub = { ProductKey: PK, TopicFullName: `/${PK}/dev01/user/get`, MessageContent: b64('x') };

    it('Missing<Param> for an absent common or action parameter', async function () {
      assertFailure(await callApi(env.sim, 'Pub', { ...pub, ProductKey: undefined }), 400, 'MissingProductKey');
      assertFailure(await callApi(env.sim, 'Pub', { ...pub, TopicFullName: undefined }), 400, 'MissingTopicFullName');
      assertFailure(
        await callApi(env.sim, 'RRpc', { ProductKey: PK, DeviceName: 'dev01', Timeout: 1000 }),
        400,
        'MissingRequestBase64Byte',
      );
      for (const name of ['Signature', 'SignatureNonce', 'Timestamp', 'AccessKeyId', 'Action']) {
        assertFailure(
          await callApi(env.sim, 'Pub', pub, {
            tamper: (params) => {
              delete params[name];
            },
          }),
          400,
          `Missing${name}`,
        );
      }
    });

    it('InvalidParameter.* for a wrong format, signature method or version', async function () {
      assertFailure(
        await callApi(env.sim, 'Pub', pub, {
          tamper: (params) => {
            params.SignatureMethod = 'HMAC-SHA256';
          },
        }),
        400,
        'InvalidParameter.SignatureMethod',
      );
      assertFailure(
        await callApi(env.sim, 'Pub', pub, {
          tamper: (params) => {
            params.SignatureVersion = '2.0';
          },
        }),
        400,
        'InvalidParameter.SignatureVersion',
      );
      assertFailure(
        await callApi(env.sim, 'Pub', pub, {
          tamper: (params) => {
            params.Format = 'XML';
          },
        }),
        400,
        'InvalidParameter.Format',
      );
      assertFailure(
        await callApi(env.sim, 'Pub', pub, {
          tamper: (params) => {
            params.Version = '2017-04-20';
          },
        }),
        400,
        'InvalidParameter.Version',
      );
    });

    it('InvalidAction.NotFound for an action it does not serve', async function () {
      assertFailure(await callApi(env.sim, 'QueryDeviceFileList', { ProductKey: PK }), 404, 'InvalidAction.NotFound');
    });

    it('InvalidTimeStamp.Format and InvalidTimeStamp.Expired', async function () {
      assertFailure(await callApi(env.sim, 'Pub', pub, { timestamp: '2023-11-14 22:13:20' }), 400, 'InvalidTimeStamp.Format');
      assertFailure(
        await callApi(env.sim, 'Pub', pub, { timestamp: apiTimestamp(new Date(Date.now() - 3_600_000)) }),
        400,
        'InvalidTimeStamp.Expired',
      );
      assertFailure(
        await callApi(env.sim, 'Pub', pub, { timestamp: apiTimestamp(new Date(Date.now() + 3_600_000)) }),
        400,
        'InvalidTimeStamp.Expired',
      );
    });

    it('InvalidAccessKeyId.NotFound for an unknown AccessKey', async function () {
      assertFailure(await callApi(env.sim, 'Pub', pub, { accessKeyId: 'LTAI_nobody' }), 404, 'InvalidAccessKeyId.NotFound');
    });

    it('SignatureDoesNotMatch for a wrong secret or a parameter changed after signing', async function () {
      assertFailure(await callApi(env.sim, 'Pub', pub, { accessKeySecret: 'wrong' }), 400, 'SignatureDoesNotMatch');
      const tampered = await callApi(env.sim, 'Pub', pub, {
        tamper: (params) => {
          params.TopicFullName = `/${PK}/dev02/user/get`;
        },
      });
      assertFailure(tampered, 400, 'SignatureDoesNotMatch');
      assert.match(String(tampered.body.ErrorMessage), /string to sign/);
      assertFailure(
        await callApi(env.sim, 'Pub', pub, {
          method: 'GET',
          tamper: (params) => {
            params.Signature = params.Signature.slice(1);
          },
        }),
        400,
        'SignatureDoesNotMatch',
      );
    });

    it('SignatureNonceUsed for a replayed nonce, not for a refused first try', async function () {
      const nonce = `nonce-${Date.now()}`;
      assertFailure(await callApi(env.sim, 'Pub', pub, { nonce, accessKeySecret: 'wrong' }), 400, 'SignatureDoesNotMatch');
      assertSuccess(await callApi(env.sim, 'Pub', pub, { nonce }));
      assertFailure(await callApi(env.sim, 'Pub', pub, { nonce }), 400, 'SignatureNonceUsed');
      assertFailure(await callApi(env.sim, 'Pub', pub, { nonce, method: 'GET' }), 400, 'SignatureNonceUsed');
    });
  });

  describe('business errors (HTTP 200, Success false)', function () {
    it('iot.common.InvalidFormattedParameter', async function () {
      const cases: Array<[string, Record<string, string | number>]> = [
        ['Pub', { ProductKey: PK, TopicFullName: `/${PK}/dev01/user/get`, MessageContent: b64('x'), Qos: 2 }],
        ['Pub', { ProductKey: PK, TopicFullName: `/${PK}/dev01/user/get`, MessageContent: 'not base64!' }],
        ['RRpc', { ProductKey: PK, DeviceName: 'dev01', RequestBase64Byte: b64('x'), Timeout: 9000 }],
        ['RRpc', { ProductKey: PK, DeviceName: 'dev01', RequestBase64Byte: b64('x'), Timeout: 'soon' }],
        ['SetDeviceProperty', { ProductKey: PK, DeviceName: 'dev01', Items: '{power' }],
        ['SetDeviceProperty', { ProductKey: PK, DeviceName: 'dev01', Items: '[1]' }],
        ['InvokeThingService', { ProductKey: PK, DeviceName: 'dev01', Identifier: 'reboot', Args: '"x"' }],
      ];
      for (const [action, params] of cases)
        assertFailure(await callApi(env.sim, action, params), 200, 'iot.common.InvalidFormattedParameter');
    });

    it('iot.messagebroker.InvalidFormattedTopicName', async function () {
      for (const topic of [
        '/otherProduct/dev01/user/get',
        `/${PK}/dev01/user/+`,
        `/sys/${PK}/dev01/thing/service/property/set`,
        'no-slash',
      ]) {
        assertFailure(
          await callApi(env.sim, 'Pub', { ProductKey: PK, TopicFullName: topic, MessageContent: b64('x') }),
          200,
          'iot.messagebroker.InvalidFormattedTopicName',
        );
      }
      assertFailure(
        await callApi(env.sim, 'RRpc', {
          ProductKey: PK,
          DeviceName: 'dev01',
          RequestBase64Byte: b64('x'),
          Timeout: 1000,
          Topic: `/${PK}/dev02/user/echo`,
        }),
        200,
        'iot.messagebroker.InvalidFormattedTopicName',
      );
    });

    it('iot.prod.NotExistedProduct, iot.device.NotExistedDevice, iot.system.InstanceNotFound', async function () {
      assertFailure(
        await callApi(env.sim, 'Pub', { ProductKey: 'a1NoSuchPrd', TopicFullName: '/a1NoSuchPrd/d/user/get', MessageContent: b64('x') }),
        200,
        'iot.prod.NotExistedProduct',
      );
      assertFailure(
        await callApi(env.sim, 'SetDeviceProperty', { ProductKey: PK, DeviceName: 'nobody', Items: '{}' }),
        200,
        'iot.device.NotExistedDevice',
      );
      assertFailure(
        await callApi(env.sim, 'RRpc', { ProductKey: PK, DeviceName: 'nobody', RequestBase64Byte: b64('x'), Timeout: 1000 }),
        200,
        'iot.device.NotExistedDevice',
      );
      assertFailure(
        await callApi(env.sim, 'SetDeviceProperty', { IotInstanceId: 'iot-06z00other', ProductKey: PK, DeviceName: 'dev01', Items: '{}' }),
        200,
        'iot.system.InstanceNotFound',
      );
    });

    it('iot.device.DeviceOffline for sets and services to a device that is not connected', async function () {
      assertFailure(
        await callApi(env.sim, 'SetDeviceProperty', { ProductKey: PK, DeviceName: 'dev02', Items: '{"power":1}' }),
        200,
        'iot.device.DeviceOffline',
      );
      assertFailure(
        await callApi(env.sim, 'InvokeThingService', { ProductKey: PK, DeviceName: 'dev02', Identifier: 'reboot', Args: '{}' }),
        200,
        'iot.device.DeviceOffline',
      );
      assertFailure(
        await callApi(env.sim, 'InvokeThingService', { ProductKey: PK, DeviceName: 'dev02', Identifier: 'getStatus', Args: '{}' }),
        200,
        'iot.device.DeviceOffline',
      );
    });

    it('iot.messagebroker.RrpcTimeout when a synchronous service is not answered', async function () {
      const answer = await callApi(env.sim, 'InvokeThingService', {
        ProductKey: PK,
        DeviceName: 'dev01',
        Identifier: 'getStatus',
        Args: '{}',
      });
      assertFailure(answer, 200, 'iot.messagebroker.RrpcTimeout');
    });
  });
});
