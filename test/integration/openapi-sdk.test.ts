// Alibaba's own SDKs against the simulator's OpenAPI: @alicloud/iot20180120 (on @alicloud/openapi-client, whose
// default signature is V3, ACS3-HMAC-SHA256) with its default settings, and @alicloud/pop-core (signature v1).
import { strict as assert } from 'node:assert';
import * as $Iot from '@alicloud/iot20180120';
import * as $OpenApi from '@alicloud/openapi-client';
import OpenApiUtil from '@alicloud/openapi-util';
import RPCClient from '@alicloud/pop-core';
import { MqttClient } from 'mqtt';
import { apiTimestamp, IOT_API_VERSION } from '../../nodes/lib/protocol';
import { canonicalRequestV3, sha256Hex, signRequestV3, V3_HEADERS } from '../../nodes/lib/protocol';
import { cloudSimulatorWithDevice, iotClient, subscribe } from '../support/cloud-fixtures';
import { SERVER_TLS, TEST_CA } from '../support/helpers';
import { AK_ID, AK_SECRET, PK } from '../support/registry';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

function nextMessage(client: MqttClient, prefix: string): Promise<{ topic: string; payload: string }> {
  return new Promise((resolve) => {
    const onMessage = (topic: string, payload: Buffer): void => {
      if (!topic.startsWith(prefix)) return;
      client.off('message', onMessage);
      resolve({ topic, payload: payload.toString() });
    };
    client.on('message', onMessage);
  });
}

/** What the SDK throws for a gateway error: the platform's Code as `code`, the HTTP status in `data`. */
async function sdkFailure(call: Promise<unknown>): Promise<{ code: string; status: number }> {
  try {
    await call;
  } catch (err) {
    const failure = err as { code?: string; data?: { statusCode?: number } };
    return { code: String(failure.code), status: Number(failure.data?.statusCode) };
  }
  throw new Error('the call succeeded');
}

describe('simulator OpenAPI: the official SDKs as clients', function () {
  const env = cloudSimulatorWithDevice('dev01', { apiTlsPort: 0, tls: SERVER_TLS });

  describe('signature V3 (ACS3-HMAC-SHA256)', function () {
    const pub = new $Iot.PubRequest({ productKey: PK, topicFullName: `/${PK}/dev01/user/get`, messageContent: b64('x') });

    it('signs exactly as @alicloud/openapi-util does for a request of the shape the SDK sends', function () {
      const body = 'MessageContent=aGk%3D';
      const query = { ProductKey: PK, TopicFullName: `/${PK}/dev01/user/get`, Qos: '1' };
      const headers = signRequestV3({
        method: 'POST',
        query,
        body,
        action: 'Pub',
        version: IOT_API_VERSION,
        accessKeyId: 'testid',
        accessKeySecret: 'testsecret',
        nonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf',
        date: '2023-11-14T22:13:20Z',
        headers: { host: 'iot.cn-shanghai.aliyuncs.com', 'content-type': 'application/x-www-form-urlencoded' },
      });
      const { authorization, ...signed } = headers;
      const theirs = OpenApiUtil.getAuthorization(
        { method: 'POST', pathname: '/', query, headers: signed } as unknown as Parameters<typeof OpenApiUtil.getAuthorization>[0],
        'ACS3-HMAC-SHA256',
        sha256Hex(body),
        'testid',
        'testsecret',
      );
      assert.equal(authorization, theirs);
      assert.match(
        authorization,
        /^ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=[0-9a-f]{64}$/,
      );
      assert.equal(
        canonicalRequestV3({
          method: 'POST',
          path: '/',
          query: { b: 'x y', a: '*' },
          headers: { host: ' h ' },
          signedHeaders: ['Host'],
          bodySha256: 'HASH',
        }),
        'POST\n/\na=%2A&b=x%20y\nhost:h\n\nhost\nHASH',
      );
    });

    it('Pub: the SDK publishes to a device topic', async function () {
      await subscribe(env.device, `/${PK}/dev01/user/get`);
      const arrived = nextMessage(env.device, `/${PK}/dev01/user/get`);
      const answer = await iotClient(env.sim).pub(
        new $Iot.PubRequest({
          productKey: PK,
          topicFullName: `/${PK}/dev01/user/get`,
          messageContent: b64('from the SDK +/='),
          qos: 1,
        }),
      );
      assert.equal(answer.statusCode, 200);
      assert.equal(answer.body?.success, true, JSON.stringify(answer.body));
      assert.match(String(answer.body?.messageId), /^\d+$/);
      assert.deepEqual(await arrived, { topic: `/${PK}/dev01/user/get`, payload: 'from the SDK +/=' });
    });

    it('SetDeviceProperty: the device gets thing.service.property.set', async function () {
      await subscribe(env.device, `/sys/${PK}/dev01/thing/service/property/set`);
      const arrived = nextMessage(env.device, `/sys/${PK}/dev01/thing/service/property/set`);
      const answer = await iotClient(env.sim).setDeviceProperty(
        new $Iot.SetDevicePropertyRequest({
          productKey: PK,
          deviceName: 'dev01',
          items: JSON.stringify({ power: 1 }),
        }),
      );
      const request = JSON.parse((await arrived).payload) as { id: string; method: string; params: unknown };
      assert.equal(request.method, 'thing.service.property.set');
      assert.deepEqual(request.params, { power: 1 });
      assert.equal(answer.body?.success, true, JSON.stringify(answer.body));
      assert.equal(answer.body?.data?.messageId, request.id);
    });

    it('InvokeThingService: a synchronous service answered by the device comes back as Result', async function () {
      await subscribe(env.device, `/sys/${PK}/dev01/rrpc/request/+`);
      env.device.on('message', (topic, payload) => {
        if (!topic.includes('/rrpc/request/')) return;
        const request = JSON.parse(payload.toString()) as { id: string };
        env.device.publish(topic.replace('/request/', '/response/'), JSON.stringify({ id: request.id, code: 200, data: { status: 'ok' } }));
      });
      const answer = await iotClient(env.sim).invokeThingService(
        new $Iot.InvokeThingServiceRequest({
          productKey: PK,
          deviceName: 'dev01',
          identifier: 'getStatus',
          args: '{}',
        }),
      );
      assert.equal(answer.body?.success, true, JSON.stringify(answer.body));
      assert.deepEqual(JSON.parse(String(answer.body?.data?.result)), { status: 'ok' });
    });

    it('RRpc: the device answer comes back Base64-encoded', async function () {
      await subscribe(env.device, `/sys/${PK}/dev01/rrpc/request/+`);
      env.device.on('message', (topic, payload) => {
        if (topic.includes('/rrpc/request/')) env.device.publish(topic.replace('/request/', '/response/'), `pong:${payload}`);
      });
      const answer = await iotClient(env.sim).rRpc(
        new $Iot.RRpcRequest({
          productKey: PK,
          deviceName: 'dev01',
          requestBase64Byte: b64('ping'),
          timeout: 2000,
        }),
      );
      assert.equal(answer.body?.success, true, JSON.stringify(answer.body));
      assert.equal(answer.body?.rrpcCode, 'SUCCESS');
      assert.equal(Buffer.from(String(answer.body?.payloadBase64Byte), 'base64').toString(), 'pong:ping');
    });

    it('over HTTPS: the SDK with the test CA publishes; a client without it is refused the certificate', async function () {
      await subscribe(env.device, `/${PK}/dev01/user/get`);
      const arrived = nextMessage(env.device, `/${PK}/dev01/user/get`);
      const client = iotClient(env.sim, { endpoint: `127.0.0.1:${env.sim.apiTlsPort}`, protocol: 'https', ca: TEST_CA });
      const answer = await client.pub(
        new $Iot.PubRequest({ productKey: PK, topicFullName: `/${PK}/dev01/user/get`, messageContent: b64('over TLS') }),
      );
      assert.equal(answer.body?.success, true, JSON.stringify(answer.body));
      assert.equal((await arrived).payload, 'over TLS');
      const refused = await sdkFailure(iotClient(env.sim, { endpoint: `127.0.0.1:${env.sim.apiTlsPort}`, protocol: 'https' }).pub(pub));
      assert.equal(refused.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    });

    it('a business error comes back as the SDK returns it: HTTP 200, success false, the platform code', async function () {
      const answer = await iotClient(env.sim).pub(
        new $Iot.PubRequest({ productKey: 'a1NoSuchPrd', topicFullName: '/a1NoSuchPrd/d/user/get', messageContent: b64('x') }),
      );
      assert.equal(answer.body?.success, false);
      assert.equal(answer.body?.code, 'iot.prod.NotExistedProduct');
    });

    it('a wrong secret: SignatureDoesNotMatch; an unknown AccessKey: InvalidAccessKeyId.NotFound', async function () {
      assert.deepEqual(await sdkFailure(iotClient(env.sim, { accessKeySecret: 'wrong' }).pub(pub)), {
        code: 'SignatureDoesNotMatch',
        status: 400,
      });
      assert.deepEqual(await sdkFailure(iotClient(env.sim, { accessKeyId: 'LTAI_nobody' }).pub(pub)), {
        code: 'InvalidAccessKeyId.NotFound',
        status: 404,
      });
    });

    it('a reused nonce: SignatureNonceUsed', async function () {
      const client = iotClient(env.sim, {
        globalParameters: new $OpenApi.GlobalParameters({ headers: { [V3_HEADERS.nonce]: `nonce-${Date.now()}` } }),
      });
      assert.equal((await client.pub(pub)).body?.success, true);
      assert.deepEqual(await sdkFailure(client.pub(pub)), { code: 'SignatureNonceUsed', status: 400 });
    });

    it('a stale date: InvalidTimeStamp.Expired', async function () {
      const stale = apiTimestamp(new Date(Date.now() - 3_600_000));
      const client = iotClient(env.sim, { globalParameters: new $OpenApi.GlobalParameters({ headers: { [V3_HEADERS.date]: stale } }) });
      assert.deepEqual(await sdkFailure(client.pub(pub)), { code: 'InvalidTimeStamp.Expired', status: 400 });
    });

    describe('hand-signed requests', function () {
      const query = { ProductKey: PK, TopicFullName: `/${PK}/dev01/user/get`, MessageContent: b64('x') };
      const send = async (
        change: (request: { query: Record<string, string>; headers: Record<string, string>; body: string }) => void = () => undefined,
        sign: Partial<Parameters<typeof signRequestV3>[0]> = {},
      ): Promise<{ status: number; body: Record<string, unknown> }> => {
        const host = `127.0.0.1:${env.sim.apiPort}`;
        const body = '';
        const headers = signRequestV3({
          method: 'POST',
          query,
          body,
          action: 'Pub',
          version: IOT_API_VERSION,
          accessKeyId: AK_ID,
          accessKeySecret: AK_SECRET,
          nonce: `n-${Math.random()}`,
          date: apiTimestamp(),
          headers: { host, 'content-type': 'application/x-www-form-urlencoded' },
          ...sign,
        });
        const request = { query: { ...query }, headers, body };
        change(request);
        const { host: _host, ...sent } = request.headers;
        const response = await fetch(`http://${host}/?${new URLSearchParams(request.query)}`, {
          method: 'POST',
          headers: sent,
          body: request.body,
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const code = (answer: { status: number; body: Record<string, unknown> }): [number, unknown] => [answer.status, answer.body.Code];

      it('succeed as signed; a parameter or the body changed after signing: SignatureDoesNotMatch', async function () {
        assert.deepEqual(code(await send()), [200, undefined]);
        assert.deepEqual(
          code(
            await send((request) => {
              request.query.TopicFullName = `/${PK}/dev02/user/get`;
            }),
          ),
          [400, 'SignatureDoesNotMatch'],
        );
        assert.deepEqual(
          code(
            await send((request) => {
              request.body = 'Qos=1';
            }),
          ),
          [400, 'SignatureDoesNotMatch'],
        );
      });

      it('a missing x-acs header: Missing<Param>; an unsigned one or a malformed Authorization: IncompleteSignature', async function () {
        for (const [name, param] of [
          [V3_HEADERS.action, 'Action'],
          [V3_HEADERS.date, 'Timestamp'],
          [V3_HEADERS.nonce, 'SignatureNonce'],
        ]) {
          assert.deepEqual(
            code(
              await send((request) => {
                delete request.headers[name];
              }),
            ),
            [400, `Missing${param}`],
          );
        }
        assert.deepEqual(
          code(
            await send((request) => {
              request.headers['x-acs-extra'] = 'unsigned';
            }),
          ),
          [400, 'IncompleteSignature'],
        );
        assert.deepEqual(
          code(
            await send((request) => {
              request.headers.authorization = 'ACS3-HMAC-SHA256 Signature=00';
            }),
          ),
          [400, 'IncompleteSignature'],
        );
        assert.deepEqual(
          code(
            await send((request) => {
              request.headers.authorization = request.headers.authorization.replace('ACS3-HMAC-SHA256', 'ACS3-HMAC-SM3');
            }),
          ),
          [400, 'InvalidParameter.SignatureMethod'],
        );
        assert.deepEqual(code(await send(undefined, { version: '2017-04-20' })), [400, 'InvalidParameter.Version']);
        assert.deepEqual(code(await send(undefined, { action: 'NoSuchAction' })), [404, 'InvalidAction.NotFound']);
      });
    });
  });

  describe('signature v1 with @alicloud/pop-core', function () {
    it('Pub by POST and by GET', async function () {
      const client = new RPCClient({
        accessKeyId: AK_ID,
        accessKeySecret: AK_SECRET,
        endpoint: `http://127.0.0.1:${env.sim.apiPort}`,
        apiVersion: IOT_API_VERSION,
      });
      await subscribe(env.device, `/${PK}/dev01/user/get`);
      for (const method of ['POST', 'GET']) {
        const arrived = nextMessage(env.device, `/${PK}/dev01/user/get`);
        const answer = await client.request<{ Success: boolean; MessageId: string }>(
          'Pub',
          {
            ProductKey: PK,
            TopicFullName: `/${PK}/dev01/user/get`,
            MessageContent: b64(`pop-core ${method}`),
            Qos: 1,
          },
          { method },
        );
        assert.equal(answer.Success, true);
        assert.deepEqual(await arrived, { topic: `/${PK}/dev01/user/get`, payload: `pop-core ${method}` });
      }
    });

    it('a wrong secret: SignatureDoesNotMatch', async function () {
      const client = new RPCClient({
        accessKeyId: AK_ID,
        accessKeySecret: 'wrong',
        endpoint: `http://127.0.0.1:${env.sim.apiPort}`,
        apiVersion: IOT_API_VERSION,
      });
      await assert.rejects(
        client.request('Pub', { ProductKey: PK, TopicFullName: `/${PK}/dev01/user/get`, MessageContent: b64('x') }, { method: 'POST' }),
        (err: { code?: string }) => err.code === 'SignatureDoesNotMatch',
      );
    });
  });
});
