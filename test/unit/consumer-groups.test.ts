import { strict as assert } from 'node:assert';
import sinon from 'sinon';
import { Consumer as GroupConsumer, ConsumerGroups, GroupMessage } from '../../sim/consumer-groups';
import { PK } from '../support/registry';

describe('simulator: consumer groups (without AMQP)', function () {
  interface Fake {
    consumer: GroupConsumer;
    got: string[];
    credit: number;
  }

  let clock: sinon.SinonFakeTimers;
  beforeEach(function () {
    clock = sinon.useFakeTimers();
  });
  afterEach(function () {
    clock.restore();
  });

  function fake(name: string, credit = 100): Fake {
    const entry: Fake = {
      got: [],
      credit,
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
    messageId: String(id),
    topic: `/${PK}/dev01/user/update`,
    payload: Buffer.from(String(id)),
    productKey: PK,
    deviceName: 'dev01',
    generateTime: 0,
  });

  it('offers a message its only consumer released to it again after the retry delay, not at once', function () {
    const groups = new ConsumerGroups({ known: ['G'], retryDelayMs: 100 });
    const only = fake('only');
    const member = groups.join('G', only.consumer);
    groups.publish(message(1));
    assert.deepEqual(only.got, ['1']);
    member.settle('1', 'released');
    clock.tick(99);
    assert.deepEqual(only.got, ['1'], 'not before the retry delay');
    clock.tick(1);
    assert.deepEqual(only.got, ['1', '1'], 'offered again at the retry delay');
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
