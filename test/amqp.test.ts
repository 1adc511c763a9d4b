import { strict as assert } from 'node:assert';
import { Consumer as GroupConsumer, ConsumerGroups, GroupMessage } from '../sim/consumer-groups';
import { Consumer, ConsumerOptions, GROUP, UPDATE_TOPIC, amqpSuite, waitForCount } from './cloud-fixtures';
import { PK, delay, startTestSimulator, waitFor } from './helpers';

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

  it('splits a group\'s messages round robin between its consumers, none lost, none twice', async function () {
    const a = consumer({ clientId: 'a' });
    const b = consumer({ clientId: 'b' });
    await Promise.all([a.ready, b.ready]);
    const sent = await publish(20);
    await waitFor(() => a.messages.length + b.messages.length >= 20, '20 messages');
    await delay(100);
    assert.equal(a.messages.length, 10);
    assert.equal(b.messages.length, 10);
    const received = [...a.messages, ...b.messages].map((message) => message.payload.toString()).sort();
    assert.deepEqual(received, [...sent].sort());
    assert.equal(new Set([...a.messages, ...b.messages].map((message) => message.messageId)).size, 20);
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
    assert.deepEqual(suite.sim.amqp?.groups.stats(GROUP), { consumers: 2, queued: 0, unsettled: 0, dropped: 0 });
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
    await delay(50);
    assert.equal(suite.sim.amqp?.groups.stats(GROUP).queued, 5);
    const late = consumer({ clientId: 'late' });
    await waitForCount(late.messages, 5, 'kept messages');
    assert.deepEqual(late.messages.map((message) => message.payload.toString()), sent);
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

describe('simulator: consumer groups (without AMQP)', function () {
  interface Fake { consumer: GroupConsumer; got: string[]; credit: number }

  function fake(name: string, credit = 100): Fake {
    const entry: Fake = {
      got: [], credit,
      consumer: {
        name,
        capacity: () => entry.credit,
        deliver: (message) => {
          entry.credit--;
          entry.got.push(message.messageId);
        },
      },
    };
    return entry;
  }

  const message = (id: number): GroupMessage => ({
    messageId: String(id), topic: `/${PK}/dev01/user/update`, payload: Buffer.from(String(id)), productKey: PK, deviceName: 'dev01', generateTime: 0,
  });

  it('offers a message its only consumer released to it again after the retry delay, not at once', async function () {
    const groups = new ConsumerGroups({ known: ['G'], retryDelayMs: 100 });
    const only = fake('only');
    const member = groups.join('G', only.consumer);
    groups.publish(message(1));
    assert.deepEqual(only.got, ['1']);
    member.settle('1', 'released');
    assert.deepEqual(only.got, ['1']);
    await waitFor(() => only.got.length === 2, 'the second offer', 2000);
    member.settle('1', 'accepted');
    assert.deepEqual(groups.stats('G'), { consumers: 1, queued: 0, unsettled: 0, dropped: 0 });
    groups.stop();
  });

  it('keeps at most maxBacklog messages for a group without consumers, dropping the oldest; waits for credit', function () {
    const groups = new ConsumerGroups({ known: ['G'], maxBacklog: 3 });
    for (let id = 1; id <= 5; id++) groups.publish(message(id));
    assert.deepEqual(groups.stats('G'), { consumers: 0, queued: 3, unsettled: 0, dropped: 2 });
    const slow = fake('slow', 1);
    const member = groups.join('G', slow.consumer);
    assert.deepEqual(slow.got, ['3']);
    slow.credit = 5;
    member.pump();
    assert.deepEqual(slow.got, ['3', '4', '5']);
    assert.equal(groups.exists('OTHER'), false);
    assert.equal(new ConsumerGroups().exists('ANY'), true);
    groups.stop();
  });
});
