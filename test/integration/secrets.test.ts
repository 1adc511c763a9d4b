// Secrets never leave the credentials: with distinctive secrets in every mode, working and failing, none appears in a
// log line, a status, a message a flow sees, an error, the preview the editor asks for, the exported flows, the
// flows files on disk or the editor's node data. Neither does a password signed from them.
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import type { NodeMessage } from 'node-red';
import rhea from 'rhea';
import { Simulator, SimulatorConfig } from '../../sim';
import {
  CATCH_ALL,
  PACKAGE_NODES,
  errorsOf,
  helper,
  node,
  onTab,
  send,
  simulatorAndRuntime,
  statusesOf,
  waitForStatus,
} from '../support/node-harness';
import { FlowNode, SERVER_TLS, iotConnection, mqConnection, nodeModule, waitFor } from '../support/helpers';
import { FAR_FUTURE, MQ_INSTANCE, PK, testRegistry } from '../support/registry';
import { SECRET, assertNoLeak } from '../support/secrets';

/** The test registry plus devices and keys with the distinctive secrets. */
const SECRETS_CONFIG: SimulatorConfig = testRegistry({
  devices: [
    { deviceName: 'secretdev', deviceSecret: SECRET.deviceSecret },
    { deviceName: 'otherdev', deviceSecret: SECRET.otherDeviceSecret },
  ],
  mqAccessKeys: [{ accessKeyId: 'AKsecret', accessKeySecret: SECRET.accessKeySecret }],
  mqTokens: [{ accessKeyId: 'AKsecret', token: SECRET.token, actions: 'RW', resources: ['parent/#'], expireTime: FAR_FUTURE }],
  mqDeviceCredentials: [
    { clientId: 'GID_test@@@secretdc', deviceAccessKeyId: 'DC.secret', deviceAccessKeySecret: SECRET.deviceAccessKeySecret },
  ],
});

type Connection = { node: FlowNode; credentials: Record<string, Record<string, string>> };

function iot(id: string, sim: Simulator, deviceName: string, deviceSecret: string, extra: Record<string, unknown> = {}): Connection {
  const connection = iotConnection(id, sim, deviceName, extra);
  return { node: connection.node, credentials: { [id]: { deviceSecret } } };
}

function mq(id: string, sim: Simulator, deviceId: string, authMode: string, secrets: Record<string, string>): Connection {
  return mqConnection(id, sim, deviceId, authMode, secrets);
}

function cloud(id: string, amqpPort: number, apiPort: number): Connection {
  return {
    node: {
      id,
      type: 'aliyun-iot-connection',
      name: '',
      mode: 'cloud',
      region: 'cn-shanghai',
      instanceId: '',
      consumerGroupId: 'DEFAULT_GROUP',
      clientId: 'secrets-test',
      amqpEndpoint: `amqp://127.0.0.1:${amqpPort}`,
      apiEndpoint: `http://127.0.0.1:${apiPort}`,
      uid: '',
    },
    credentials: { [id]: { accessKeyId: 'LTAIsecret', accessKeySecret: SECRET.cloudAccessKeySecret } },
  };
}

/** Stand-ins for the cloud application's endpoints that refuse every login and record what they were sent. */
class RefusingCloud {
  readonly seen: string[] = [];
  amqpPort = 0;
  apiPort = 0;
  private api?: http.Server;
  private amqp?: { close(): void };

  async start(): Promise<this> {
    this.api = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on('end', () => {
        const signature = new URLSearchParams(body).get('Signature');
        if (signature) this.seen.push(signature);
        response.writeHead(400, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({
            Code: 'SignatureDoesNotMatch',
            Message: 'Specified signature is not matched with our calculation.',
            RequestId: 'r1',
          }),
        );
      });
    });
    await new Promise<void>((resolve) => this.api?.listen(0, '127.0.0.1', resolve));
    this.apiPort = (this.api.address() as AddressInfo).port;
    const container = rhea.create_container();
    (container.sasl_server_mechanisms as { enable_plain(check: (username: string, password: string) => boolean): void }).enable_plain(
      (_username, password) => {
        this.seen.push(password);
        return false;
      },
    );
    container.on('disconnected', () => undefined);
    const server = container.listen({ port: 0, host: '127.0.0.1' }) as unknown as http.Server;
    await new Promise<void>((resolve) => server.once('listening', resolve));
    this.amqpPort = (server.address() as AddressInfo).port;
    this.amqp = server;
    return this;
  }

  async stop(): Promise<void> {
    this.amqp?.close();
    this.api?.closeAllConnections();
    await new Promise<void>((resolve) => this.api?.close(() => resolve()) ?? resolve());
  }
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('secrets: never in logs, statuses, messages or errors', function () {
  this.timeout(60_000);
  const env = simulatorAndRuntime({ ...SECRETS_CONFIG, tlsPort: 0, tls: SERVER_TLS });
  let refusing: RefusingCloud;
  /** Every MQTT password the simulator was sent: signed from the secrets, so as sensitive as they are. */
  const passwords: string[] = [];

  beforeEach(async function () {
    refusing = await new RefusingCloud().start();
    const registry = env.sim.registry;
    const login = registry.login.bind(registry);
    registry.login = (clientId, username, password) => {
      if (password) passwords.push(password);
      return login(clientId, username, password);
    };
  });

  afterEach(async function () {
    await refusing.stop();
  });

  it('in every mode, working and failing', async function () {
    const { sim } = env;
    const deadPort = await closedPort();
    const connections: Connection[] = [
      iot('iotOk', sim, 'secretdev', SECRET.deviceSecret),
      iot('iotWrong', sim, 'otherdev', SECRET.wrongDeviceSecret),
      iot('iotTls', sim, 'otherdev', SECRET.otherDeviceSecret, { protocol: 'mqtts', port: String(sim.tlsPort) }),
      iot('iotBadConfig', sim, 'secretdev', SECRET.deviceSecret, { productKey: 'bad-key' }),
      mq('mqSig', sim, 'secretsig', 'signature', { accessKeyId: 'AKsecret', accessKeySecret: SECRET.accessKeySecret }),
      mq('mqSigWrong', sim, 'secretsigw', 'signature', { accessKeyId: 'AKsecret', accessKeySecret: SECRET.wrongAccessKeySecret }),
      mq('mqToken', sim, 'secrettok', 'token', { accessKeyId: 'AKsecret', token: SECRET.token }),
      mq('mqTokenWrong', sim, 'secrettokw', 'token', { accessKeyId: 'AKsecret', token: SECRET.wrongToken }),
      mq('mqDc', sim, 'secretdc', 'device-credential', { accessKeyId: 'DC.secret', accessKeySecret: SECRET.deviceAccessKeySecret }),
      cloud('cloudRefused', refusing.amqpPort, refusing.apiPort),
      cloud('cloudDown', deadPort, deadPort),
    ];
    const users: FlowNode[] = [];
    for (const { node: config } of connections) {
      const topic =
        config.mode === 'iot' ? '/${productKey}/${deviceName}/user/echo' : config.mode === 'mq' ? 'parent/${clientId}' : `/${PK}/+/user/#`;
      users.push({
        id: `in-${config.id}`,
        type: 'aliyun-iot-in',
        connection: config.id,
        topic,
        qos: '1',
        datatype: 'utf8',
        wires: [['received']],
      });
      if (config.mode === 'cloud') {
        users.push({
          id: `invoke-${config.id}`,
          type: 'aliyun-iot-invoke',
          connection: config.id,
          action: 'service',
          productKey: PK,
          deviceName: 'secretdev',
          identifier: 'reboot',
          topic: '',
          timeout: '1000',
          wires: [['received']],
        });
      } else {
        users.push({ id: `out-${config.id}`, type: 'aliyun-iot-out', connection: config.id, topic: '', qos: '1', retain: '' });
      }
    }
    users.push({
      id: 'post',
      type: 'aliyun-iot-post',
      connection: 'iotOk',
      kind: 'property',
      event: '',
      ack: true,
      timeout: '1000',
      wires: [['received']],
    });
    const flow = onTab([
      ...connections.map((connection) => connection.node),
      ...users,
      ...CATCH_ALL,
      { id: 'status', type: 'status', scope: null, wires: [['statuses']] },
      { id: 'received', type: 'helper' },
      { id: 'statuses', type: 'helper' },
    ]);
    const credentials = Object.assign({}, ...connections.map((connection) => connection.credentials)) as Record<
      string,
      Record<string, string>
    >;
    await helper.load(PACKAGE_NODES as never, flow as never, credentials as never);
    const seen: unknown[] = [];
    for (const id of ['received', 'caught', 'statuses']) helper.getNode(id).on('input', (msg: NodeMessage) => seen.push(msg));

    await Promise.all([
      waitForStatus('in-iotOk', 'connected'),
      waitForStatus('in-iotWrong', 'refused-signature'),
      waitForStatus('in-iotTls', 'tls-error'),
      waitForStatus('in-iotBadConfig', 'config-error'),
      waitForStatus('in-mqSig', 'connected'),
      waitForStatus('in-mqSigWrong', 'refused-not-authorized'),
      waitForStatus('in-mqToken', 'connected'),
      waitForStatus('in-mqTokenWrong', 'refused-not-authorized'),
      waitForStatus('in-mqDc', 'connected'),
      waitForStatus('in-cloudRefused', 'refused-not-authorized'),
      waitForStatus('in-cloudDown', 'disconnected'),
    ]);

    // Traffic that works, and inputs that fail: each failure is an error a flow sees.
    send('out-iotOk', { topic: `/${PK}/secretdev/user/echo`, payload: 'hello' });
    send('out-mqSig', { topic: 'parent/GID_test@@@secretsig', payload: 'hello' });
    send('out-mqToken', { topic: 'parent/GID_test@@@secrettok', payload: 'hello' });
    send('out-mqDc', { topic: 'parent/GID_test@@@secretdc', payload: 'hello' });
    send('out-iotOk', { topic: `/${PK}/secretdev/user/+`, payload: 'wildcard' });
    send('out-iotOk', { topic: `/${PK}/secretdev/user/echo`, payload: 'x'.repeat(256 * 1024 + 1) });
    send('out-mqSig', { topic: 'parent/x', payload: 'q', qos: 2 });
    send('out-iotWrong', { topic: `/${PK}/otherdev/user/echo`, payload: 'queued while refused' });
    send('out-iotBadConfig', { topic: 'a', payload: 'misconfigured' });
    send('post', { payload: { temperature: 1 } });
    send('out-mqToken', { action: 'uploadToken', payload: { token: SECRET.uploadedBadType, type: 'X' } });
    send('out-mqToken', { action: 'uploadToken', payload: `${SECRET.uploadedMalformed}|` });
    send('out-mqSig', { action: 'uploadToken', payload: SECRET.uploadedToWrongMode });
    send('invoke-cloudRefused', { payload: { a: 1 } });
    send('invoke-cloudDown', { payload: { a: 1 } });
    await waitFor(() => seen.filter((msg) => (msg as { payload?: unknown }).payload === 'hello').length === 4, 'the four echoes', 10_000);
    await waitFor(() => refusing.seen.length >= 2, 'the refused cloud logins', 10_000);
    await waitFor(
      () => errorsOf(node('invoke-cloudDown')).length > 0 && errorsOf(node('invoke-cloudRefused')).length > 0,
      'the invoke errors',
      10_000,
    );
    // One more refused cloud login after all that: the retry paths have logged too.
    const refusedSoFar = refusing.seen.length;
    await waitFor(() => refusing.seen.length > refusedSoFar, 'one more refused cloud login');

    const ids = [...connections.map((c) => c.node.id), ...users.map((u) => u.id)];
    const deployedNodes = ids.map((id) => node(id));
    // A full redeploy without the secrets' nodes exercises the close paths too.
    // setFlows resolves once the old nodes have closed.
    await helper.setFlows(onTab([...CATCH_ALL]) as never, 'full');

    const signed = [...passwords, ...refusing.seen];
    assert.ok(passwords.length >= 7, `the simulator saw ${passwords.length} logins`);
    const logLines = helper
      .log()
      .getCalls()
      .map((call) => inspect(call.args, { depth: 8 }));
    assertNoLeak('a log line', logLines.join('\n'), signed);
    assertNoLeak('a status', deployedNodes.map((each) => inspect(statusesOf(each))).join('\n'), signed);
    assertNoLeak('an error', deployedNodes.map((each) => errorsOf(each).join('\n')).join('\n'), signed);
    assertNoLeak('a message a flow saw (output, catch, status)', inspect(seen, { depth: 8 }), signed);
    // The failures really happened, so the checks above looked at them.
    const caughtText = inspect(seen, { depth: 8 });
    assert.match(caughtText, /\+ and # are only allowed in subscriptions/);
    assert.match(caughtText, /Token type 'X' is invalid/);
    assert.match(caughtText, /SignatureDoesNotMatch|signature is not matched/);
    assert.match(logLines.join('\n'), /CONNACK 5/);
    assert.match(logLines.join('\n'), /certificate/);
  });

  it('the editor preview of a connection shows endpoint, client id and username, never a secret or password', async function () {
    const forms = [
      {
        mode: 'iot',
        productKey: PK,
        deviceName: 'secretdev',
        protocol: 'mqtt',
        host: '127.0.0.1',
        port: '1883',
        deviceSecret: SECRET.deviceSecret,
      },
      {
        mode: 'mq',
        instanceId: MQ_INSTANCE,
        groupId: 'GID_test',
        deviceId: 'd1',
        authMode: 'signature',
        accessKeyId: 'AKsecret',
        accessKeySecret: SECRET.accessKeySecret,
      },
      {
        mode: 'mq',
        instanceId: MQ_INSTANCE,
        groupId: 'GID_test',
        deviceId: 'd1',
        authMode: 'token',
        accessKeyId: 'AKsecret',
        token: SECRET.token,
      },
      { mode: 'cloud', uid: '1234567890', accessKeyId: 'LTAIsecret', accessKeySecret: SECRET.cloudAccessKeySecret },
      { mode: 'iot', productKey: 'bad', deviceName: 'x', deviceSecret: SECRET.deviceSecret },
    ];
    await helper.load([nodeModule('aliyun-iot-connection')] as never, [] as never);
    for (const form of forms) {
      const response = await helper.request().post('/aliyun-iot/preview').send(form);
      assert.equal(response.status, 200);
      const body = response.body as Record<string, unknown>;
      assert.ok(body.username || body.error, JSON.stringify(body));
      assert.equal('password' in body, false, JSON.stringify(body));
      assertNoLeak('the preview', JSON.stringify(body));
    }
  });
});
