// The editor in headless Chromium (Debian's chromium driven by playwright-core): palette, config dialog, locales,
// importing and deploying examples. Screenshots go to test-artifacts/.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BrowserContext, Page, chromium } from 'playwright-core';
import { Simulator, startSimulator } from '../../sim';
import { NodeRedProcess } from '../support/processes';
import { CONFIG_NODE_TYPES, PACKAGE_NODE_TYPES, REPO_ROOT } from '../support/paths';
import { demoRegistry } from '../support/registry';

const ROOT = REPO_ROOT;
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const CHROMIUM = '/usr/bin/chromium';
/** What the palette shows: every node type but the config nodes. */
const NODE_TYPES = PACKAGE_NODE_TYPES.filter((type) => !CONFIG_NODE_TYPES.includes(type));
const DEMO_REGISTRY = demoRegistry();

// The editor's globals, as far as these tests use them.
declare const RED: {
  editor: { editConfig(name: string, type: string, id: string): void };
  view: { importNodes(nodes: unknown[]): void };
  nodes: {
    node(id: string): unknown;
    eachConfig(callback: (node: { id: string; type: string }) => void): void;
    eachWorkspace(callback: (tab: { id: string; label: string }) => void): void;
  };
  workspaces: { show(id: string): void };
  utils: { getNodeLabel(node: unknown): string };
};
declare const $: { getJSON(url: string): PromiseLike<unknown> };

function catalog(language: string, type: string): Record<string, Record<string, unknown>> {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'nodes', 'locales', language, `${type}.json`), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;
}

describe('editor (headless Chromium)', function () {
  this.timeout(90_000);
  let sim: Simulator;
  let nodeRed: NodeRedProcess;
  let editorUrl: string;
  const contexts: BrowserContext[] = [];
  /** Chromium's profile directories, one per editor opened; removed after the run. */
  const profiles: string[] = [];

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      // CI installs Chromium (.ci/run), so there its absence is a failure; elsewhere these tests need it installed.
      if (process.env.CI === 'true') throw new Error(`the editor tests need Chromium at ${CHROMIUM}, and CI=true`);
      console.log(`      skipped: no Chromium at ${CHROMIUM} (install it to run the editor tests; in CI its absence fails)`);
      this.skip();
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    sim = await startSimulator({ ...DEMO_REGISTRY, port: 0, adminPort: 0 });
    // The variables npm start gives Node-RED.
    nodeRed = await NodeRedProcess.start({
      ALIYUN_IOT_SIM_PORT: String(sim.port),
      ALIYUN_IOT_SIM_ADMIN_PORT: String(sim.adminPort),
      ALIYUN_IOT_SIM_AMQP_ENDPOINT: `amqp://127.0.0.1:${sim.amqpPort}`,
      ALIYUN_IOT_SIM_API_ENDPOINT: `http://127.0.0.1:${sim.apiPort}`,
    });
    editorUrl = nodeRed.url;
  });

  after(async function () {
    await Promise.all(contexts.map((context) => context.close()));
    for (const profile of profiles) fs.rmSync(profile, { recursive: true, force: true });
    await nodeRed?.stop();
    await sim?.stop();
  });

  afterEach(async function () {
    // Each test deploys what it needs; start the next one from an empty workspace.
    await nodeRed?.deploy([]);
  });

  async function openEditor(locale = 'en-US'): Promise<Page> {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-chromium-'));
    profiles.push(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      locale,
      viewport: { width: 1400, height: 1250 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    contexts.push(context);
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(editorUrl);
    await page.waitForSelector('#red-ui-palette .red-ui-palette-node[data-palette-type="aliyun-iot-in"]', { timeout: 30_000 });
    return page;
  }

  async function openConfigDialog(page: Page, id = '_ADD_'): Promise<void> {
    await page.evaluate((nodeId) => RED.editor.editConfig('', 'aliyun-iot-connection', nodeId), id);
    await page.waitForSelector('#node-config-input-mode', { state: 'visible' });
  }

  function previewText(page: Page): Promise<string> {
    return page.locator('#aliyun-iot-preview').innerText();
  }

  it('lists every node type under "Aliyun IoT" in the palette', async function () {
    const page = await openEditor();
    const categories = await page.evaluate(
      (types) =>
        types.map((type) => {
          const entry = document.querySelector(`.red-ui-palette-node[data-palette-type="${type}"]`);
          const category = entry?.closest('.red-ui-palette-category');
          return category?.querySelector('.red-ui-palette-header')?.textContent?.trim() ?? null;
        }),
      NODE_TYPES,
    );
    assert.deepEqual(
      categories,
      NODE_TYPES.map(() => 'Aliyun IoT'),
    );
    const labels = await page.locator('.red-ui-palette-node[data-palette-type^="aliyun-iot-"] .red-ui-palette-label').allInnerTexts();
    assert.deepEqual(
      labels.map((label) => label.replace(/\s+/g, ' ').trim()),
      NODE_TYPES.map((type) => catalog('en-US', type)[type].paletteLabel),
    );
    const category = page
      .locator('.red-ui-palette-node[data-palette-type="aliyun-iot-in"]')
      .locator('xpath=ancestor::div[contains(@class,"red-ui-palette-category")]');
    await category.screenshot({ path: path.join(ARTIFACTS, 'palette.png') });
  });

  it('the config dialog shows the fields of the chosen service and auth mode, validates, and previews what it will send', async function () {
    const page = await openEditor();
    await openConfigDialog(page);
    const visible = (field: string): Promise<boolean> => page.locator(`#node-config-input-${field}`).isVisible();

    assert.deepEqual(await Promise.all(['productKey', 'deviceName', 'deviceSecret', 'region', 'groupId', 'token'].map(visible)), [
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    await page.fill('#node-config-input-productKey', 'a1B2c3D4e5F');
    await page.fill('#node-config-input-deviceName', 'dev01');
    await page.fill('#node-config-input-deviceSecret', 'Very-Secret-Value-1');
    await page.waitForFunction(() => document.querySelector('#aliyun-iot-preview')?.textContent?.includes('dev01&a1B2c3D4e5F'));
    let preview = await previewText(page);
    assert.match(preview, /mqtts:\/\/a1B2c3D4e5F\.iot-as-mqtt\.cn-shanghai\.aliyuncs\.com:1883/);
    assert.match(preview, /a1B2c3D4e5F\.dev01\|securemode=2,signmethod=hmacsha256,timestamp=\d+,ext=1\|/);
    assert.ok(!preview.includes('Very-Secret-Value-1'));

    await page.fill('#node-config-input-productKey', 'bad key');
    await page.locator('#node-config-input-productKey').press('Tab');
    await page.waitForFunction(() => document.querySelector('#node-config-input-productKey')?.classList.contains('input-error'));
    await page.waitForFunction(() =>
      /ProductKey 'bad key' is malformed/.test(document.querySelector('#aliyun-iot-preview')?.textContent ?? ''),
    );
    await page.fill('#node-config-input-keepalive', '10');
    await page.locator('#node-config-input-keepalive').press('Tab');
    await page.waitForFunction(() => document.querySelector('#node-config-input-keepalive')?.classList.contains('input-error'));

    await page.selectOption('#node-config-input-mode', 'mq');
    assert.deepEqual(
      await Promise.all(
        ['productKey', 'deviceSecret', 'region', 'groupId', 'deviceId', 'accessKeyId', 'accessKeySecret', 'token'].map(visible),
      ),
      [false, false, false, true, true, true, true, false],
    );
    await page.fill('#node-config-input-instanceId', 'post-cn-test');
    await page.fill('#node-config-input-groupId', 'GID_test');
    await page.fill('#node-config-input-deviceId', 'dev1');
    await page.fill('#node-config-input-accessKeyId', 'AK');
    await page.selectOption('#node-config-input-authMode', 'token');
    assert.deepEqual(await Promise.all(['accessKeySecret', 'token'].map(visible)), [false, true]);
    await page.fill('#node-config-input-token', 'Token-Secret-Value-2');
    await page.waitForFunction(() => document.querySelector('#aliyun-iot-preview')?.textContent?.includes('Token|AK|post-cn-test'));
    preview = await previewText(page);
    assert.match(preview, /mqtts:\/\/post-cn-test\.mqtt\.aliyuncs\.com:8883/);
    assert.match(preview, /GID_test@@@dev1/);
    assert.ok(!preview.includes('Token-Secret-Value-2'));
    await page.selectOption('#node-config-input-authMode', 'device-credential');
    assert.deepEqual(await Promise.all(['accessKeySecret', 'token'].map(visible)), [true, false]);
    const labels = catalog('en-US', 'aliyun-iot-connection')['aliyun-iot-connection'].label as Record<string, string>;
    assert.equal((await page.locator('label[for="node-config-input-accessKeyId"]').innerText()).trim(), labels.deviceAccessKeyId);
    await page.fill('#node-config-input-groupId', 'group1');
    await page.locator('#node-config-input-groupId').press('Tab');
    await page.waitForFunction(() => document.querySelector('#node-config-input-groupId')?.classList.contains('input-error'));
    await page.fill('#node-config-input-groupId', 'GID_test');
    await page.selectOption('#node-config-input-authMode', 'signature');
    await page.waitForFunction(() => document.querySelector('#aliyun-iot-preview')?.textContent?.includes('Signature|AK|post-cn-test'));
    await page
      .locator('.red-ui-tray')
      .last()
      .screenshot({ path: path.join(ARTIFACTS, 'config-dialog.png') });

    await page.selectOption('#node-config-input-mode', 'cloud');
    assert.deepEqual(
      await Promise.all(
        [
          'consumerGroupId',
          'uid',
          'amqpEndpoint',
          'apiEndpoint',
          'accessKeyId',
          'accessKeySecret',
          'groupId',
          'productKey',
          'queueSize',
          'queueTimeout',
        ].map(visible),
      ),
      [true, true, true, true, true, true, false, false, false, false],
    );
    await page.fill('#node-config-input-instanceId', '');
    await page.fill('#node-config-input-uid', '1234567890');
    await page.fill('#node-config-input-consumerGroupId', 'DEFAULT_GROUP');
    await page.waitForFunction(() =>
      document.querySelector('#aliyun-iot-preview')?.textContent?.includes('1234567890.iot-amqp.cn-shanghai.aliyuncs.com'),
    );
    await page.fill('#node-config-input-amqpEndpoint', '${ALIYUN_IOT_SIM_AMQP_ENDPOINT}');
    await page.locator('#node-config-input-amqpEndpoint').press('Tab');
    assert.equal(
      await page.locator('#node-config-input-amqpEndpoint').evaluate((input) => input.classList.contains('input-error')),
      false,
      'an environment variable is a valid endpoint',
    );
  });

  it('shows Chinese labels in the zh-CN locale', async function () {
    const page = await openEditor('zh-CN');
    const expected = NODE_TYPES.map((type) => catalog('zh-CN', type)[type].paletteLabel as string);
    await page.waitForFunction(
      (label) =>
        (
          document.querySelector('.red-ui-palette-node[data-palette-type="aliyun-iot-in"] .red-ui-palette-label') as HTMLElement | null
        )?.innerText
          .replace(/\s+/g, ' ')
          .trim() === label,
      expected[0],
    );
    const labels = await page.locator('.red-ui-palette-node[data-palette-type^="aliyun-iot-"] .red-ui-palette-label').allInnerTexts();
    assert.deepEqual(
      labels.map((label) => label.replace(/\s+/g, ' ').trim()),
      expected,
    );
    assert.notDeepEqual(
      expected,
      NODE_TYPES.map((type) => catalog('en-US', type)[type].paletteLabel),
    );
    await openConfigDialog(page);
    const zh = catalog('zh-CN', 'aliyun-iot-connection')['aliyun-iot-connection'].label as Record<string, string>;
    assert.equal((await page.locator('label[for="node-config-input-mode"]').innerText()).trim(), zh.mode);
    assert.equal((await page.locator('#node-config-input-mode option[value="mq"]').innerText()).trim(), zh['mode-mq']);
    // The preview's errors follow the editor's language.
    await page.fill('#node-config-input-productKey', 'bad key');
    await page.waitForFunction(() => /ProductKey“bad key”格式错误/.test(document.querySelector('#aliyun-iot-preview')?.textContent ?? ''));
    await page
      .locator('.red-ui-tray')
      .last()
      .screenshot({ path: path.join(ARTIFACTS, 'config-dialog-zh-CN.png') });
  });

  it('the connection dialog fits what the examples put in it; connections are told apart; invoke lists only cloud ones', async function () {
    const page = await openEditor();
    const mq = (deviceId: string): Record<string, unknown> => ({
      id: `mq-${deviceId}`,
      type: 'aliyun-iot-connection',
      mode: 'mq',
      instanceId: 'post-cn-test',
      groupId: 'GID_test',
      deviceId,
      authMode: 'signature',
      protocol: 'mqtt',
      host: '127.0.0.1',
      port: '${ALIYUN_IOT_SIM_PORT}',
    });
    await page.evaluate(
      (nodes) => RED.view.importNodes(nodes),
      [
        { id: 'fit-tab', type: 'tab', label: 'fit' },
        {
          id: 'fit-iot',
          type: 'aliyun-iot-connection',
          mode: 'iot',
          productKey: 'a1B2c3D4e5F',
          deviceName: 'dev01',
          protocol: 'mqtt',
          host: '127.0.0.1',
          port: '${ALIYUN_IOT_SIM_PORT}',
        },
        mq('sensor01'),
        mq('bridge'),
        mq('actuator01'),
        {
          id: 'fit-cloud',
          type: 'aliyun-iot-connection',
          name: 'backend',
          mode: 'cloud',
          consumerGroupId: 'DEFAULT_GROUP',
          amqpEndpoint: '${ALIYUN_IOT_SIM_AMQP_ENDPOINT}',
          apiEndpoint: '${ALIYUN_IOT_SIM_API_ENDPOINT}',
        },
        { id: 'fit-invoke', type: 'aliyun-iot-invoke', z: 'fit-tab', x: 200, y: 100, connection: 'fit-cloud', action: 'rrpc', wires: [[]] },
      ],
    );
    const mqLabels = await page.evaluate(
      (ids) => ids.map((id) => RED.utils.getNodeLabel(RED.nodes.node(id))),
      ['mq-sensor01', 'mq-bridge', 'mq-actuator01'],
    );
    // The Configuration nodes sidebar shows a label's first dozen characters or so.
    assert.deepEqual(
      mqLabels.map((label) => label.slice(0, 10)),
      ['sensor01 ·', 'bridge · A', 'actuator01'],
    );

    await openConfigDialog(page, 'fit-iot');
    const connectionLabels = catalog('en-US', 'aliyun-iot-connection')['aliyun-iot-connection'] as Record<string, unknown> & {
      label: Record<string, string>;
    };
    assert.match(await page.locator('.red-ui-tray-titlebar').last().innerText(), new RegExp(`${connectionLabels.paletteLabel as string}`));
    // The environment variable reads as the runtime reads it.
    await page.waitForFunction(
      (port) => document.querySelector('#aliyun-iot-preview')?.textContent?.includes(`mqtt://127.0.0.1:${port}`),
      sim.port,
    );
    assert.equal(await page.locator('.aliyun-iot-preview-error').count(), 0);
    assert.ok(
      await page.locator('#node-config-input-port').evaluate((input: HTMLInputElement) => input.scrollWidth <= input.clientWidth),
      'the Port box shows ${ALIYUN_IOT_SIM_PORT} whole',
    );
    await page
      .locator('.red-ui-tray')
      .last()
      .screenshot({ path: path.join(ARTIFACTS, 'config-dialog-variables.png') });
    // Every service's name fits the select, with room for its arrow.
    const cut = await page.locator('#node-config-input-mode').evaluate((select: HTMLSelectElement) => {
      const context = document.createElement('canvas').getContext('2d') as CanvasRenderingContext2D;
      context.font = getComputedStyle(select).font;
      return Array.from(select.options)
        .map((option) => option.text)
        .filter((text) => context.measureText(text).width + 30 > select.clientWidth);
    });
    assert.deepEqual(cut, []);
    await page.selectOption('#node-config-input-mode', 'mq');
    await page.selectOption('#node-config-input-authMode', 'device-credential');
    const accessKeyLabel = (): Promise<string> =>
      page
        .locator('label[for="node-config-input-accessKeyId"]')
        .innerText()
        .then((text) => text.trim());
    assert.equal(await accessKeyLabel(), connectionLabels.label.deviceAccessKeyId);
    await page.selectOption('#node-config-input-mode', 'cloud');
    assert.equal(await accessKeyLabel(), connectionLabels.label.accessKeyId);
    await page.click('#node-config-dialog-cancel');

    await page.waitForSelector('#node-config-input-mode', { state: 'detached' });
    await openConfigDialog(page, 'fit-cloud');
    await page
      .waitForFunction(
        (port) => document.querySelector('#aliyun-iot-preview')?.textContent?.includes(`amqp://127.0.0.1:${port}`),
        sim.amqpPort,
        { timeout: 10_000 },
      )
      .catch(async (err: Error) => {
        throw new Error(`${err.message}: ${await previewText(page)} (AMQP port ${sim.amqpPort})`);
      });
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('#node-config-input-mode', { state: 'detached' });

    await page.evaluate(() => RED.workspaces.show('fit-tab'));
    await page.evaluate(() =>
      (window as unknown as { RED: { editor: { edit(node: unknown): void } } }).RED.editor.edit(RED.nodes.node('fit-invoke')),
    );
    await page.waitForSelector('#node-input-connection', { state: 'visible' });
    const choices = await page.locator('#node-input-connection option').allInnerTexts();
    assert.ok(choices.includes('backend'), choices.join(', '));
    assert.deepEqual(
      choices.filter((choice) => /sensor01|dev01/.test(choice)),
      [],
      'device connections are not offered',
    );
  });

  it('offers the sub-device picker only while the node is on an IoT Platform connection', async function () {
    const page = await openEditor();
    await page.evaluate(
      (nodes) => RED.view.importNodes(nodes),
      [
        { id: 'sub-tab', type: 'tab', label: 'sub-devices' },
        { id: 'sub-gw', type: 'aliyun-iot-connection', name: 'gateway', mode: 'iot', productKey: 'a1B2c3D4e5F', deviceName: 'gw01' },
        {
          id: 'sub-mq',
          type: 'aliyun-iot-connection',
          name: 'mq',
          mode: 'mq',
          instanceId: 'post-cn-test',
          groupId: 'GID_test',
          deviceId: 'x',
        },
        { id: 'sub-in', type: 'aliyun-iot-in', z: 'sub-tab', x: 200, y: 100, connection: 'sub-gw', topic: '/a/b/user/c', wires: [[]] },
      ],
    );
    await page.evaluate(() => RED.workspaces.show('sub-tab'));
    await page.evaluate(() =>
      (window as unknown as { RED: { editor: { edit(node: unknown): void } } }).RED.editor.edit(RED.nodes.node('sub-in')),
    );
    const row = page.locator('#aliyun-iot-in-subdevice-row');
    await row.waitFor({ state: 'visible' });
    await page.selectOption('#node-input-connection', 'sub-mq');
    await row.waitFor({ state: 'hidden' });
    await page.selectOption('#node-input-connection', 'sub-gw');
    await row.waitFor({ state: 'visible' });
    await page.click('#node-dialog-cancel');
  });

  it('imports an example, takes its secret, deploys, and its nodes connect', async function () {
    const page = await openEditor();
    const example = (await page.evaluate(() =>
      $.getJSON('library/examples/flows/node-red-contrib-aliyun-iot/01 Device up and down on custom topics'),
    )) as unknown[];
    assert.ok(Array.isArray(example) && example.length > 5);
    await page.evaluate((nodes) => RED.view.importNodes(nodes), example);
    const connectionId = await page.evaluate(() => {
      let id = '';
      RED.nodes.eachConfig((node) => {
        if (node.type === 'aliyun-iot-connection') id = node.id;
      });
      return id;
    });
    await openConfigDialog(page, connectionId);
    await page.fill('#node-config-input-deviceSecret', 'secret-dev03');
    await page.click('#node-config-dialog-ok');
    await page.click('#red-ui-header-button-deploy');
    await page.evaluate(() =>
      RED.nodes.eachWorkspace((tab) => {
        if (tab.label === 'Custom topics') RED.workspaces.show(tab.id);
      }),
    );
    // The example's in and out nodes use the connection.
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('.red-ui-flow-node-status-label')).filter((label) => label.textContent === 'connected')
          .length === 2,
      undefined,
      { timeout: 20_000 },
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'example-deployed.png') });
  });

  it('the demo flow runs: its nodes connect and the debug sidebar shows the traffic', async function () {
    const secrets = new Map((DEMO_REGISTRY.products ?? [])[0].devices.map((device) => [device.deviceName, device.deviceSecret]));
    const demo = (
      JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', '00 Demo with the simulator.json'), 'utf8')) as Array<Record<string, unknown>>
    ).map((node) =>
      node.type === 'aliyun-iot-connection' ? { ...node, credentials: { deviceSecret: secrets.get(node.deviceName as string) } } : node,
    );
    const deployed = await nodeRed.deploy(demo);
    assert.equal(deployed.status, 204);
    const page = await openEditor();
    await page.evaluate(() => (window as unknown as { RED: { sidebar: { show(id: string): void } } }).RED.sidebar.show('debug'));
    await page.waitForFunction(
      () => {
        const labels = Array.from(document.querySelectorAll('.red-ui-flow-node-status-label')).map((label) => label.textContent);
        // post, out, in, command and reply use the two connections.
        return labels.filter((label) => label === 'connected').length === 5;
      },
      undefined,
      { timeout: 20_000 },
    );
    await page.waitForFunction(() => document.querySelectorAll('.red-ui-debug-msg').length >= 3, undefined, { timeout: 30_000 });
    const debugText = await page.locator('#red-ui-sidebar-content').innerText();
    assert.match(debugText, /dev01 post reply|cloud: device answers/);
    // No node (the long comment above all) starts left of the canvas's edge, where it would be clipped.
    const leftmost = await page.evaluate(() =>
      Math.min(
        ...Array.from(document.querySelectorAll('#red-ui-workspace-chart g[transform] > rect.red-ui-flow-node')).map(
          (rect) => (rect.parentNode as SVGGElement).transform.baseVal.consolidate()!.matrix.e + (rect as SVGGraphicsElement).getBBox().x,
        ),
      ),
    );
    assert.ok(leftmost >= 0, `a node starts at x ${leftmost}, off the canvas`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-flow.png') });
  });
});
