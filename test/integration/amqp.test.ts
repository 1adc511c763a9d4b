import { strict as assert } from 'node:assert';
import { Consumer, ConsumerOptions, ReceivedMessage, UPDATE_TOPIC, amqpSuite, waitForCount } from '../support/cloud-fixtures';
import { SENTINEL, startTestSimulator, waitFor } from '../support/helpers';
import { GROUP, PK } from '../support/registry';

describe('simulator: server-side subscription over AMQP', function () {
  const suite = amqpSuite();
  const consumer = (options: ConsumerOptions): Consumer => suite.consumer(options);
  const publish = (count: number, prefix?: string): Promise<string[]> => suite.publish(count, prefix);

  it('delivers device messages with topic, messageId and generateTime, custom topics and thing-model posts alike', async function () {
    const app = consumer({ clientId: 'app1' });
    await app.ready;
    const before = Date.now();
    await publish(1, 'hello');
    const post = JSON.stringify({ id: '7', version: '1.0', params: { temp: 21.5 }, method: 'thing.event.property.post' });
    suite.device.publish(`/sys/${PK}/dev01/thing/event/property/post`, post, { qos: 1 });
    await waitForCount(app.messages, 2, 'messages');
    const [custom, thing] = app.messages;
    assert.equal(custom.topic, UPDATE_TOPIC);
    assert.equal(custom.payload.toString(), 'hello0');
    assert.match(custom.messageId, /^\d+$/);
    assert.ok(custom.generateTime >= before - 1000 && custom.generateTime <= Date.now());
    assert.equal(custom.context.message?.message_id, custom.messageId);
    assert.equal(thing.topic, `/sys/${PK}/dev01/thing/event/property/post`);
    assert.deepEqual(JSON.parse(thing.payload.toString()), JSON.parse(post));
    assert.notEqual(thing.messageId, custom.messageId);
  });

  it('refuses a wrong signature, an unknown AccessKey or consumer group, with amqp:unauthorized-access', async function () {
    const refused: string[] = [];
    suite.sim.amqp?.on('refused', (info) => refused.push(info.reason));
    for (const options of [
      { clientId: 'bad1', accessKeySecret: 'wrong' },
      { clientId: 'bad2', group: 'NO_SUCH_GROUP' },
      { clientId: 'bad3', accessKeyId: 'LTAI_unknown' },
    ]) {
      const bad = consumer(options);
      await assert.rejects(bad.ready, (err: { condition?: string }) => err.condition === 'amqp:unauthorized-access');
    }
    assert.deepEqual(refused, ['the signature does not match', 'no consumer group NO_SUCH_GROUP', 'no AccessKey LTAI_unknown']);
    // A good login still works afterwards.
    const good = consumer({ clientId: 'good' });
    await good.ready;
  });

  it("splits a group's messages round robin between its consumers, none lost, none twice", async function () {
    const a = consumer({ clientId: 'a' });
    const b = consumer({ clientId: 'b' });
    await Promise.all([a.ready, b.ready]);
    const sent = await publish(20);
    // Round robin: the next two messages go one to each consumer, after everything before them on its link.
    await publish(2, SENTINEL);
    const isSentinel = (message: ReceivedMessage): boolean => message.payload.toString().startsWith(SENTINEL);
    await waitFor(() => a.messages.some(isSentinel) && b.messages.some(isSentinel), 'a sentinel at each consumer');
    const [fromA, fromB] = [a, b].map((entry) => entry.messages.filter((message) => !isSentinel(message)));
    assert.equal(fromA.length, 10);
    assert.equal(fromB.length, 10);
    const received = [...fromA, ...fromB].map((message) => message.payload.toString()).sort();
    assert.deepEqual(received, [...sent].sort());
    assert.equal(new Set([...fromA, ...fromB].map((message) => message.messageId)).size, 20);
  });

  it('gives every consumer group its own copy', async function () {
    const a = consumer({ clientId: 'a' });
    const b = consumer({ clientId: 'b', group: 'GROUP_B' });
    await Promise.all([a.ready, b.ready]);
    await publish(3);
    await waitForCount(a.messages, 3, 'messages in group A');
    await waitForCount(b.messages, 3, 'messages in group B');
  });

  it('redelivers to another consumer what one released or rejected', async function () {
    const refuser = consumer({ clientId: 'refuser', accept: false });
    await refuser.ready;
    const taker = consumer({ clientId: 'taker' });
    await taker.ready;
    let released = 0;
    refuser.connection.on('message', (context) => {
      if (released++ % 2 === 0) context.delivery?.release();
      else context.delivery?.reject({ condition: 'amqp:internal-error', description: 'test' });
    });
    const sent = await publish(6);
    await waitForCount(taker.messages, 6, 'messages at the taker');
    assert.ok(refuser.messages.length >= 3, `the refuser had its turn (${refuser.messages.length})`);
    assert.deepEqual(taker.messages.map((message) => message.payload.toString()).sort(), [...sent].sort());
    assert.deepEqual(suite.sim.amqp?.groups.stats(GROUP), { consumers: 2, queued: 0, queuedBytes: 0, unsettled: 0, dropped: 0 });
  });

  it('redelivers what a consumer held unaccepted when it went away', async function () {
    const holder = consumer({ clientId: 'holder', accept: false });
    await holder.ready;
    const taker = consumer({ clientId: 'taker' });
    await taker.ready;
    const sent = await publish(6);
    await waitForCount(holder.messages, 3, 'messages at the holder');
    await waitForCount(taker.messages, 3, 'messages at the taker');
    holder.destroy();
    await waitForCount(taker.messages, 6, 'all messages at the taker');
    assert.deepEqual(taker.messages.map((message) => message.payload.toString()).sort(), [...sent].sort());
  });

  it('keeps messages while no consumer is connected and delivers them on attach', async function () {
    const sent = await publish(5);
    await waitFor(() => suite.sim.amqp?.groups.stats(GROUP).queued === 5, 'five messages kept for the group');
    const late = consumer({ clientId: 'late' });
    await waitForCount(late.messages, 5, 'kept messages');
    assert.deepEqual(
      late.messages.map((message) => message.payload.toString()),
      sent,
    );
  });

  it('serves no AMQP or OpenAPI listener without a cloud section', async function () {
    const plain = await startTestSimulator();
    try {
      assert.equal(plain.amqp, undefined);
      assert.equal(plain.amqpPort, 0);
      assert.equal(plain.apiPort, 0);
    } finally {
      await plain.stop();
    }
  });
});
