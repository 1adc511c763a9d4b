// The OpenAPI client against a local HTTP server that plays the gateway: throttled calls are retried with fresh
// signatures, other refusals are not, calls in flight are bounded; and the RPC-style parameters of any action.
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { OpenApiClient, apiParams, isRetryable } from '../../nodes/lib/connection';
import { AliyunIotError } from '../../nodes/lib/errors';

interface Exchange {
  params: URLSearchParams;
  respond(status: number, body: Record<string, unknown>): void;
}

/** A gateway whose every request the test answers itself. */
async function gateway(onRequest: (exchange: Exchange) => void): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () =>
      onRequest({
        params: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
        respond: (status, body) => {
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify(body));
        },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const CREDENTIALS = { regionId: 'cn-shanghai', accessKeyId: 'LTAI_unit', accessKeySecret: 'unit_secret' };
const FAST_RETRY = { baseDelayMs: 1, maxDelayMs: 4 };

describe('OpenAPI client', function () {
  it('sends a throttled call again with a new nonce, and resolves with the answer that follows', async function () {
    const nonces: string[] = [];
    const server = await gateway((exchange) => {
      nonces.push(exchange.params.get('SignatureNonce') ?? '');
      if (nonces.length === 1) exchange.respond(400, { Code: 'Throttling.User', Message: 'Request was denied due to user flow control.' });
      else if (nonces.length === 2)
        exchange.respond(503, { Code: 'ServiceUnavailable', Message: 'The request has failed due to a temporary failure of the server.' });
      else exchange.respond(200, { Success: true, MessageId: '1' });
    });
    try {
      const client = new OpenApiClient({ ...CREDENTIALS, endpoint: server.endpoint, retry: FAST_RETRY });
      assert.deepEqual(await client.call('Pub', { ProductKey: 'a1B2c3D4e5F' }), { Success: true, MessageId: '1' });
      assert.equal(nonces.length, 3);
      assert.equal(new Set(nonces).size, 3, 'each attempt is signed afresh');
    } finally {
      await server.close();
    }
  });

  it('gives up after the retries with the last code, and does not retry a refusal that may have acted', async function () {
    let calls = 0;
    const server = await gateway((exchange) => {
      calls++;
      if (exchange.params.get('Action') === 'Pub') exchange.respond(400, { Code: 'Throttling', Message: 'throttled' });
      else exchange.respond(500, { Code: 'InternalError', Message: 'unknown' });
    });
    try {
      const client = new OpenApiClient({ ...CREDENTIALS, endpoint: server.endpoint, retry: { ...FAST_RETRY, retries: 2 } });
      await assert.rejects(
        client.call('Pub', {}),
        (err: AliyunIotError & { apiCode?: string }) => err.code === 'API_FAILED' && err.apiCode === 'Throttling',
      );
      assert.equal(calls, 3, 'the call and 2 retries');
      await assert.rejects(client.call('RRpc', {}), (err: { apiCode?: string }) => err.apiCode === 'InternalError');
      assert.equal(calls, 4, 'an internal error is not retried');
    } finally {
      await server.close();
    }
  });

  it('keeps at most maxConcurrent calls in flight and lets the others wait their turn', async function () {
    const held: Exchange[] = [];
    let peak = 0;
    const server = await gateway((exchange) => {
      held.push(exchange);
      peak = Math.max(peak, held.length);
    });
    try {
      const client = new OpenApiClient({ ...CREDENTIALS, endpoint: server.endpoint, maxConcurrent: 3 });
      const calls = Array.from({ length: 7 }, (_, i) => client.call('Pub', { N: i }));
      let answered = 0;
      while (answered < 7) {
        // As many as the bound allows arrive before any is answered; the next one only once one is.
        const expected = Math.min(3, 7 - answered);
        await new Promise<void>((resolve) => {
          const check = (): void => (held.length === expected ? resolve() : void setImmediate(check));
          check();
        });
        held.shift()?.respond(200, { Success: true });
        answered++;
      }
      assert.equal((await Promise.all(calls)).length, 7);
      assert.equal(peak, 3);
    } finally {
      await server.close();
    }
  });

  it('retries only what the platform refused without acting', function () {
    assert.ok(isRetryable(400, 'Throttling.User'));
    assert.ok(isRetryable(400, 'Throttling.Api'));
    assert.ok(isRetryable(503, 'ServiceUnavailable'));
    assert.ok(isRetryable(429, ''));
    assert.ok(!isRetryable(500, 'InternalError'));
    assert.ok(!isRetryable(200, 'iot.device.NotExistedDevice'));
    assert.ok(!isRetryable(400, 'ThrottlingX'));
  });
});

describe('OpenAPI parameters of any action', function () {
  it('flattens lists as the RPC style wants, and sends objects outside lists as JSON', function () {
    assert.deepEqual(apiParams({ ProductKey: 'a1B2c3D4e5F', DeviceName: ['dev01', 'dev02'], PageSize: 10, Asc: true, Skip: null }), {
      ProductKey: 'a1B2c3D4e5F',
      'DeviceName.1': 'dev01',
      'DeviceName.2': 'dev02',
      PageSize: '10',
      Asc: 'true',
    });
    assert.deepEqual(apiParams({ TopoAddItem: [{ ProductKey: 'a1B2c3D4e5F', DeviceName: 'sub01' }] }), {
      'TopoAddItem.1.ProductKey': 'a1B2c3D4e5F',
      'TopoAddItem.1.DeviceName': 'sub01',
    });
    assert.deepEqual(apiParams({ Items: { light: 1 } }), { Items: '{"light":1}' });
    assert.deepEqual(apiParams(undefined), {});
  });

  it('refuses what is not a parameter object, and the parameters the connection signs', function () {
    const invalid = (payload: unknown, name: string): void => {
      assert.throws(
        () => apiParams(payload),
        (err: AliyunIotError) => err.code === 'API_PARAMS_INVALID' && err.params.name === name,
      );
    };
    invalid('ProductKey=x', 'msg.payload');
    invalid([1, 2], 'msg.payload');
    invalid({ AccessKeyId: 'other' }, 'AccessKeyId');
    invalid({ Signature: 'x' }, 'Signature');
    invalid({ 'bad name': 'x' }, 'bad name');
    invalid({ Value: Number.NaN }, 'Value');
  });
});
