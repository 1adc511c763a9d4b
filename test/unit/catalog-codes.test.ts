// Error, log and status codes are the keys of the en-US connection catalog: a misspelt one does not compile (each
// `@ts-expect-error` below fails the build if the code it marks becomes acceptable), and the codes built at run time
// are entries of every language's catalog. That each language has exactly the keys of en-US is test/i18n.test.ts's.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConnectionStatus, NO_FAILURES, classifyClose, reconnectPolicy, refusalLogCode } from '../../nodes/lib/connection';
import { AliyunIotError, LogMessage } from '../../nodes/lib/errors';
import { errorStatus, statusText } from '../../nodes/support/status';

const LOCALES = path.join(__dirname, '..', '..', 'nodes', 'locales');

function logSection(language: string): Record<string, string> {
  const file = path.join(LOCALES, language, 'aliyun-iot-connection.json');
  const catalog = JSON.parse(fs.readFileSync(file, 'utf8')) as { 'aliyun-iot-connection': { log: Record<string, string> } };
  return catalog['aliyun-iot-connection'].log;
}

describe('catalog codes', function () {
  it('takes error, log and status codes only from the catalog', function () {
    assert.equal(new AliyunIotError('QOS_UNSUPPORTED').message, 'QoS 2 is not supported by Alibaba Cloud: use 0 or 1');
    assert.equal(new LogMessage('CONNECTED', { target: 'dev01' }).text, 'connected: dev01');

    // @ts-expect-error: not an error code
    const misspelt = new AliyunIotError('QOS_UNSUPORTED');
    assert.equal(misspelt.message, 'QOS_UNSUPORTED', 'an unknown code has no text but itself');
    // @ts-expect-error: an error code, not a log code
    assert.equal(new LogMessage('QOS_UNSUPPORTED').text, 'QOS_UNSUPPORTED');
    // @ts-expect-error: not a status code
    const status: ConnectionStatus = { state: 'connected', reason: 'conected' };
    assert.equal(status.reason, 'conected');
  });

  it("takes the node layer's status keys only from the catalog", function () {
    assert.equal(statusText('config-error'), 'node-red-contrib-aliyun-iot/aliyun-iot-connection:aliyun-iot-connection.status.config-error');
    // @ts-expect-error: not a status code
    assert.match(errorStatus('subscribe-refused').text as string, /status\.subscribe-refused$/);
  });

  it("builds a refused login's log code that every language has, for each return code and service", function () {
    const languages = fs.readdirSync(LOCALES);
    assert.ok(languages.length >= 2);
    for (const mode of ['iot', 'mq'] as const) {
      for (const returnCode of [1, 2, 3, 4, 5]) {
        const code = refusalLogCode(mode, returnCode);
        assert.equal(code, `REFUSED_${returnCode}_${mode.toUpperCase()}`);
        for (const language of languages) assert.ok(logSection(language)[code], `${language} log.${code}`);
      }
      for (const returnCode of [0, 6, 135]) assert.equal(refusalLogCode(mode, returnCode), 'REFUSED_OTHER');
    }
  });

  it('logs a refused login with its code, also one outside MQTT 3.1.1', function () {
    const facts = {
      mode: 'iot' as const,
      target: 'dev01',
      current: { state: 'connecting' as const, reason: 'connecting' as const },
      livedMs: 0,
      detectKick: true,
    };
    const known = classifyClose({ ...facts, returnCode: 4 }, NO_FAILURES, reconnectPolicy(), () => 0.5);
    assert.deepEqual(known.status, { state: 'refused', reason: 'refused-unknown-device', returnCode: 4 });
    assert.equal(known.log?.message.code, 'REFUSED_4_IOT');
    const other = classifyClose({ ...facts, returnCode: 135 }, NO_FAILURES, reconnectPolicy(), () => 0.5);
    assert.deepEqual(other.status, { state: 'refused', reason: 'refused', returnCode: 135 });
    assert.equal(other.log?.message.text, 'Login to dev01 refused (CONNACK 135)');
  });
});
