// The parts of a connection that run on timers, under sinon's fake clock: the offline queue's time limit and the
// timeouts of requests waiting for their answer.
import { strict as assert } from 'node:assert';
import sinon from 'sinon';
import { AliyunIotError } from '../../nodes/lib/errors';
import { OfflineQueue, PendingRequests, QueuedPublish } from '../../nodes/lib/connection';

describe('timers: the offline queue', function () {
  let clock: sinon.SinonFakeTimers;
  beforeEach(function () {
    clock = sinon.useFakeTimers();
  });
  afterEach(function () {
    clock.restore();
  });

  function publish(payload: string, outcomes: string[]): QueuedPublish {
    return {
      topic: '/t',
      payload,
      qos: 1,
      retain: false,
      callback: (err) => outcomes.push(`${payload}:${err instanceof AliyunIotError ? err.code : 'sent'}`),
    };
  }

  it('fails a message with QUEUE_EXPIRED exactly when its time limit is up, not before, and only that one', function () {
    const queue = new OfflineQueue(10);
    const outcomes: string[] = [];
    queue.push(publish('early', outcomes), 1000);
    clock.tick(400);
    queue.push(publish('late', outcomes), 1000);
    queue.push(publish('unlimited', outcomes), 0);
    clock.tick(599);
    assert.deepEqual([outcomes, queue.length], [[], 3], 'nothing expires before its limit');
    clock.tick(1);
    assert.deepEqual([outcomes, queue.length], [['early:QUEUE_EXPIRED'], 2]);
    clock.tick(400);
    assert.deepEqual([outcomes, queue.length], [['early:QUEUE_EXPIRED', 'late:QUEUE_EXPIRED'], 1]);
    clock.tick(3_600_000);
    assert.equal(queue.shift()?.payload, 'unlimited', 'a limit of 0 never expires');
  });

  it('stops the timer of a message that leaves the queue in time', function () {
    const queue = new OfflineQueue(10);
    const outcomes: string[] = [];
    queue.push(publish('a', outcomes), 1000);
    queue.push(publish('b', outcomes), 1000);
    clock.tick(999);
    assert.deepEqual([queue.shift()?.payload, queue.shift()?.payload], ['a', 'b'], 'in order');
    clock.tick(10_000);
    assert.deepEqual(outcomes, [], 'a message sent in time does not expire afterwards');
    assert.equal(clock.countTimers(), 0);
  });

  it('fails the excess with QUEUE_FULL at once, and failAll fails the rest with its code and stops their timers', function () {
    const queue = new OfflineQueue(2);
    const outcomes: string[] = [];
    for (const payload of ['one', 'two', 'three']) queue.push(publish(payload, outcomes), 5000);
    assert.deepEqual(outcomes, ['three:QUEUE_FULL']);
    queue.failAll('CONNECTION_CLOSED');
    assert.deepEqual(outcomes, ['three:QUEUE_FULL', 'one:CONNECTION_CLOSED', 'two:CONNECTION_CLOSED']);
    assert.equal(clock.countTimers(), 0);
    clock.tick(10_000);
    assert.equal(outcomes.length, 3, 'nothing fails twice');
  });
});

describe('timers: requests waiting for an answer', function () {
  let clock: sinon.SinonFakeTimers;
  beforeEach(function () {
    clock = sinon.useFakeTimers();
  });
  afterEach(function () {
    clock.restore();
  });

  function record(outcomes: string[], id: string): (error: Error | undefined, value?: string) => void {
    return (error, value) => outcomes.push(error ? `${id}:${error.message}` : `${id}:${value}`);
  }

  it('settles each request once: by answer, or by timeout after which an answer is refused', function () {
    const pending = new PendingRequests<string>();
    const outcomes: string[] = [];
    pending.add('1', 1000, record(outcomes, '1'), () => new Error('timeout'));
    pending.add('2', 20, record(outcomes, '2'), () => new Error('timeout'));
    assert.ok(pending.resolve('1', 'answer'));
    assert.ok(!pending.resolve('1', 'again'));
    clock.tick(19);
    assert.deepEqual(outcomes, ['1:answer'], 'not timed out before its timeout');
    clock.tick(1);
    assert.ok(!pending.resolve('2', 'late'));
    assert.deepEqual(outcomes, ['1:answer', '2:timeout']);
    assert.equal(pending.size, 0);
    clock.tick(10_000);
    assert.equal(outcomes.length, 2, 'an answered request does not time out later');
  });

  it('refuses a second request with a waiting id; rejectAll settles everything waiting', function () {
    const pending = new PendingRequests<string>();
    const outcomes: string[] = [];
    pending.add('a', 1000, record(outcomes, 'a'), () => new Error('timeout'));
    assert.throws(() => pending.add('a', 1000, record(outcomes, 'a'), () => new Error('timeout')), /request id a is already waiting/);
    pending.add('b', 1000, record(outcomes, 'b'), () => new Error('timeout'));
    assert.ok(pending.reject('a', new Error('refused')));
    pending.rejectAll(() => new Error('closed'));
    assert.deepEqual(outcomes, ['a:refused', 'b:closed']);
    assert.equal(clock.countTimers(), 0);
  });
});
