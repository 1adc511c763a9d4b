import { strict as assert } from 'node:assert';
import sinon from 'sinon';
import {
  Consumer as GroupConsumer,
  ConsumerGroups,
  GroupMessage,
  MAX_BACKLOG_BYTES,
  MAX_BACKLOG_MESSAGES,
} from '../../sim/consumer-groups';
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

  const sizeOf = (entry: GroupMessage): number => entry.payload.length + Buffer.byteLength(entry.topic);

  it('keeps at most maxBacklogBytes of messages for a group without consumers, dropping the oldest with a log line', function () {
    const lines: string[] = [];
    const big = (id: number): GroupMessage => ({ ...message(id), payload: Buffer.alloc(1000, id) });
    const groups = new ConsumerGroups({ known: ['G'], maxBacklogBytes: 3 * sizeOf(big(1)), log: (line) => lines.push(line) });
    for (let id = 1; id <= 5; id++) groups.publish(big(id));
    assert.deepEqual(groups.stats('G'), { consumers: 0, queued: 3, queuedBytes: 3 * sizeOf(big(1)), unsettled: 0, dropped: 2 });
    assert.deepEqual(lines, [`consumer group G: backlog over ${3 * sizeOf(big(1))} bytes, 1 oldest dropped so far`]);
    const late = fake('late');
    const member = groups.join('G', late.consumer);
    assert.deepEqual(late.got, ['3', '4', '5'], 'the newest are kept');
    assert.equal(groups.stats('G').queuedBytes, 0);
    member.settle('4', 'released');
    assert.equal(groups.stats('G').queuedBytes, sizeOf(big(4)), 'a message given back counts again');
    groups.stop();
  });

  it('bounds the backlog by MAX_BACKLOG_MESSAGES and MAX_BACKLOG_BYTES when not told otherwise', function () {
    assert.equal(MAX_BACKLOG_MESSAGES, 10_000);
    assert.ok(MAX_BACKLOG_BYTES >= 256 * 1024 && MAX_BACKLOG_BYTES < MAX_BACKLOG_MESSAGES * 256 * 1024);
    const groups = new ConsumerGroups({ known: ['G'] });
    const huge: GroupMessage = { ...message(1), payload: Buffer.alloc(MAX_BACKLOG_BYTES / 4) };
    for (let id = 1; id <= 5; id++) groups.publish({ ...huge, messageId: String(id) });
    assert.equal(groups.stats('G').queued, 3);
    assert.equal(groups.stats('G').dropped, 2);
    groups.stop();
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
    assert.deepEqual(groups.stats('G'), { consumers: 1, queued: 0, queuedBytes: 0, unsettled: 0, dropped: 0 });
    groups.stop();
  });

  it('keeps at most maxBacklog messages for a group without consumers, dropping the oldest; waits for credit', function () {
    const groups = new ConsumerGroups({ known: ['G'], maxBacklog: 3 });
    for (let id = 1; id <= 5; id++) groups.publish(message(id));
    assert.deepEqual(groups.stats('G'), { consumers: 0, queued: 3, queuedBytes: 3 * sizeOf(message(1)), unsettled: 0, dropped: 2 });
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
