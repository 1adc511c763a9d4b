// Server-side subscription as strict as the platform: the accept deadline (an unaccepted message is delivered again),
// logins with a stale signed timestamp refused, and AMQP over TLS.
import { strict as assert } from 'node:assert';
import { AMQP_TIMESTAMP_WINDOW_MS } from '../../sim/amqp';
import { Consumer, UPDATE_TOPIC, amqpSuite, waitForCount } from '../support/cloud-fixtures';
import { SERVER_TLS, TEST_CA, waitFor } from '../support/helpers';
import { GROUP } from '../support/registry';

const ACCEPT_TIMEOUT_MS = 200;

describe('simulator: server-side subscription fidelity', function () {
  const suite = amqpSuite({ amqpAcceptTimeoutMs: ACCEPT_TIMEOUT_MS, amqpTlsPort: 0, tls: SERVER_TLS });
  const consumer = suite.consumer;
  const publish = (payload: string): Promise<string[]> => suite.publish(1, payload);

  const deliveryCount = (entry: Consumer['messages'][number]): number => entry.context.message?.delivery_count ?? 0;
  const settledAll = (): boolean => {
    const stats = suite.sim.amqp?.groups.stats(GROUP);
    return stats?.queued === 0 && stats.unsettled === 0;
  };

  describe('the accept deadline', function () {
    it('a message its only consumer leaves unsettled is delivered again, with its delivery count; once accepted, it is done', async function () {
      const app = consumer({ clientId: 'slow', accept: false });
      await app.ready;
      await publish('late');
      await waitForCount(app.messages, 2, 'deliveries');
      const [first, again] = app.messages;
      assert.equal(again.messageId, first.messageId);
      assert.equal(again.payload.toString(), 'late0');
      assert.deepEqual([deliveryCount(first), deliveryCount(again)], [0, 1]);
      again.context.delivery?.accept();
      await waitFor(settledAll, 'the group to have nothing left to deliver');
    });

    it('goes to another consumer of the group when there is one; the late accept of the first delivery changes nothing', async function () {
      const slow = consumer({ clientId: 'slow', accept: false });
      await slow.ready;
      const quick = consumer({ clientId: 'quick' });
      await quick.ready;
      await publish('once more');
      await waitForCount(quick.messages, 1, 'the redelivery');
      assert.equal(slow.messages.length, 1);
      assert.equal(quick.messages[0].messageId, slow.messages[0].messageId);
      assert.equal(deliveryCount(quick.messages[0]), 1);
      slow.messages[0].context.delivery?.accept();
      await waitFor(settledAll, 'the group to have nothing left to deliver');
    });

    it('a message accepted in time is delivered once', async function () {
      const app = consumer({ clientId: 'app' });
      await app.ready;
      await publish('on time');
      await waitForCount(app.messages, 1, 'messages');
      await waitFor(settledAll, 'the accept to arrive');
      assert.equal(deliveryCount(app.messages[0]), 0);
    });
  });

  it(`refuses a login whose signed timestamp is more than ${AMQP_TIMESTAMP_WINDOW_MS / 60_000} minutes off the server's clock`, async function () {
    const refused: string[] = [];
    suite.sim.amqp?.on('refused', (info) => refused.push(info.reason));
    for (const offset of [-AMQP_TIMESTAMP_WINDOW_MS - 60_000, AMQP_TIMESTAMP_WINDOW_MS + 60_000]) {
      const stale = consumer({ clientId: `stale${offset}`, timestamp: Date.now() + offset });
      await assert.rejects(stale.ready, (err: { condition?: string }) => err.condition === 'amqp:unauthorized-access');
    }
    assert.equal(refused.length, 2);
    for (const reason of refused) assert.match(reason, /timestamp \d+ is not within 15 minutes/);
    const recent = consumer({ clientId: 'recent', timestamp: Date.now() - AMQP_TIMESTAMP_WINDOW_MS + 60_000 });
    await recent.ready;
  });

  it('serves AMQP over TLS with the configured certificate besides plain TCP', async function () {
    assert.ok(suite.sim.amqpTlsPort && suite.sim.amqpTlsPort !== suite.sim.amqpPort);
    const app = consumer({ clientId: 'secure', ca: TEST_CA });
    await app.ready;
    await publish('encrypted');
    await waitForCount(app.messages, 1, 'messages');
    assert.equal(app.messages[0].payload.toString(), 'encrypted0');
    assert.equal(app.messages[0].topic, UPDATE_TOPIC);
  });
});
