// The editor's "Will send" preview (POST /aliyun-iot/preview): fields that are environment variables read as the
// runtime reads them, an unset one named, and the answer in the language the editor asks for.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeModule } from '../support/helpers';
import { helper, startServer, stopServer } from '../support/node-harness';
import { REPO_ROOT } from '../support/paths';

const EXAMPLES = path.join(REPO_ROOT, 'examples');

/** The variables `npm start` gives Node-RED, with the values its simulator would have. */
const NPM_START_ENVIRONMENT: Record<string, string> = {
  ALIYUN_IOT_SIM_PORT: '11883',
  ALIYUN_IOT_SIM_ADMIN_PORT: '11884',
  ALIYUN_IOT_SIM_AMQP_ENDPOINT: 'amqp://127.0.0.1:15672',
  ALIYUN_IOT_SIM_API_ENDPOINT: 'http://127.0.0.1:11885',
};

type FlowNode = Record<string, unknown> & { id: string; type: string };

function exampleConnections(): Array<{ example: string; node: FlowNode }> {
  return fs
    .readdirSync(EXAMPLES)
    .filter((file) => file.endsWith('.json'))
    .flatMap((example) =>
      (JSON.parse(fs.readFileSync(path.join(EXAMPLES, example), 'utf8')) as FlowNode[])
        .filter((node) => node.type === 'aliyun-iot-connection')
        .map((node) => ({ example, node })),
    );
}

interface Preview {
  endpoint?: string;
  apiEndpoint?: string;
  clientId?: string;
  username?: string;
  error?: string;
}

async function preview(form: Record<string, unknown>, language?: string): Promise<Preview> {
  const request = helper.request().post('/aliyun-iot/preview');
  if (language) request.set('Accept-Language', language);
  const response = await request.send(form);
  assert.equal(response.status, 200);
  return response.body as Preview;
}

describe('connection preview in the editor', function () {
  const saved = new Map<string, string | undefined>();

  function setEnvironment(values: Record<string, string | undefined>): void {
    for (const [name, value] of Object.entries(values)) {
      if (!saved.has(name)) saved.set(name, process.env[name]);
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }

  before(startServer);
  after(stopServer);
  beforeEach(async function () {
    await helper.load([nodeModule('aliyun-iot-connection')] as never, [] as never);
    setEnvironment(NPM_START_ENVIRONMENT);
  });
  afterEach(async function () {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    saved.clear();
    await helper.unload();
  });

  it('previews every connection of every example without an error, with the variables npm start sets', async function () {
    const connections = exampleConnections();
    assert.ok(connections.length >= 10, `only ${connections.length} connections in the examples`);
    for (const { example, node } of connections) {
      const result = await preview({ ...node, accessKeyId: 'AK' });
      assert.equal(result.error, undefined, `${example}: ${node.id}: ${result.error}`);
      if (node.mode === 'cloud') {
        assert.equal(result.endpoint, NPM_START_ENVIRONMENT.ALIYUN_IOT_SIM_AMQP_ENDPOINT, `${example}: ${node.id}`);
        assert.equal(result.apiEndpoint, NPM_START_ENVIRONMENT.ALIYUN_IOT_SIM_API_ENDPOINT, `${example}: ${node.id}`);
      } else {
        assert.equal(result.endpoint, `mqtt://127.0.0.1:${NPM_START_ENVIRONMENT.ALIYUN_IOT_SIM_PORT}`, `${example}: ${node.id}`);
      }
    }
  });

  it('names a variable that is not set, with the field that uses it', async function () {
    setEnvironment({ ALIYUN_IOT_SIM_PORT: undefined, ALIYUN_IOT_SIM_AMQP_ENDPOINT: undefined });
    const [device] = exampleConnections().filter(({ node }) => node.mode === 'iot');
    const deviceResult = await preview(device.node);
    assert.match(deviceResult.error ?? '', /^Port uses the environment variable ALIYUN_IOT_SIM_PORT, which is not set/);
    assert.doesNotMatch(deviceResult.error ?? '', /NaN/);
    const [cloud] = exampleConnections().filter(({ node }) => node.mode === 'cloud');
    const cloudResult = await preview({ ...cloud.node, accessKeyId: 'AK' });
    assert.match(cloudResult.error ?? '', /^AMQP endpoint uses the environment variable ALIYUN_IOT_SIM_AMQP_ENDPOINT/);
  });

  it("answers in the editor's language: Chinese for zh-CN, English otherwise", async function () {
    setEnvironment({ ALIYUN_IOT_SIM_PORT: undefined });
    const [device] = exampleConnections().filter(({ node }) => node.mode === 'iot');
    const unset = await preview(device.node, 'zh-CN');
    assert.match(unset.error ?? '', /^端口使用的环境变量 ALIYUN_IOT_SIM_PORT 在 Node-RED 的运行环境中未设置/);
    const malformed = { mode: 'iot', productKey: 'bad key', deviceName: 'dev01' };
    assert.match((await preview(malformed, 'zh-CN,zh;q=0.9')).error ?? '', /ProductKey“bad key”/);
    assert.match((await preview(malformed, 'zh')).error ?? '', /[\u4e00-\u9fff]/, 'zh finds the zh-CN catalog');
    assert.match((await preview(malformed, 'fr-FR')).error ?? '', /^ProductKey 'bad key' is malformed/);
    assert.match((await preview(malformed)).error ?? '', /^ProductKey 'bad key' is malformed/);
  });

  it('expands a variable of the old $(NAME) form too, and leaves text around ${NAME} alone, as the runtime does', async function () {
    const form = { mode: 'iot', productKey: 'a1B2c3D4e5F', deviceName: 'dev01', protocol: 'mqtt', host: '127.0.0.1' };
    assert.equal((await preview({ ...form, port: '$(ALIYUN_IOT_SIM_PORT)' })).endpoint, 'mqtt://127.0.0.1:11883');
    const embedded = await preview({ ...form, port: ':${ALIYUN_IOT_SIM_PORT}' });
    assert.match(embedded.error ?? '', /^Port '.*' is not a port number/);
    assert.doesNotMatch(embedded.error ?? '', /environment variable/);
  });
});
