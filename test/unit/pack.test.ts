// The gateway's pack post (thing.event.property.pack.post): entries checked, split to the platform's limits, built.
import { strict as assert } from 'node:assert';
import { AliyunIotError } from '../../nodes/lib/errors';
import { AlinkObject, GATEWAY_LIMITS, buildPackPost, packEntries, splitPack } from '../../nodes/lib/protocol';

const SUB_PK = 'a1SubDev001';
const GATEWAY = { productKey: 'a1GateWay01', deviceName: 'gw01' };

function sub(index: number): string {
  return `sub${String(index).padStart(4, '0')}`;
}

function numbered(prefix: string, count: number, value: (index: number) => unknown = (index) => index): Record<string, unknown> {
  return Object.fromEntries(Array.from({ length: count }, (_, index) => [`${prefix}${index}`, value(index)]));
}

type Group = 'properties' | 'events';

function subDevicesOf(post: AlinkObject): AlinkObject[] {
  return (post.subDevices as AlinkObject[] | undefined) ?? [];
}

/** Properties or events in one post: the gateway's own and every sub-device's. */
function count(post: AlinkObject, group: Group): number {
  return subDevicesOf(post).reduce(
    (sum, entry) => sum + Object.keys(entry[group] as AlinkObject).length,
    Object.keys(post[group] as AlinkObject).length,
  );
}

function total(posts: AlinkObject[], group: Group): number {
  return posts.reduce((sum, post) => sum + count(post, group), 0);
}

function withinLimits(posts: AlinkObject[]): boolean {
  return posts.every(
    (post) =>
      subDevicesOf(post).length <= GATEWAY_LIMITS.packSubDevices &&
      count(post, 'properties') <= GATEWAY_LIMITS.packProperties &&
      count(post, 'events') <= GATEWAY_LIMITS.packEvents,
  );
}

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (err) {
    return (err as AliyunIotError).code;
  }
  return undefined;
}

describe('pack post', function () {
  it('states the platform limits: 20 sub-devices, 200 properties, 20 events per post', function () {
    assert.deepEqual([GATEWAY_LIMITS.packSubDevices, GATEWAY_LIMITS.packProperties, GATEWAY_LIMITS.packEvents], [20, 200, 20]);
  });

  it('puts the gateway entry (no identity) at the top and sub-devices under subDevices, each value timed', function () {
    const [post] = splitPack(
      [
        { properties: { uptime: 5 }, events: { boot: { value: { reason: 'power' }, time: 7 } } },
        { productKey: SUB_PK, deviceName: sub(1), properties: { temperature: 21.5 } },
      ],
      1000,
    );
    assert.deepEqual(post, {
      properties: { uptime: { value: 5, time: 1000 } },
      events: { boot: { value: { reason: 'power' }, time: 7 } },
      subDevices: [
        { identity: { productKey: SUB_PK, deviceName: sub(1) }, properties: { temperature: { value: 21.5, time: 1000 } }, events: {} },
      ],
    });
    assert.equal(splitPack([{ properties: { a: 1 } }], 1)[0].subDevices, undefined, 'no subDevices without sub-devices');
  });

  it('splits 45 sub-devices to posts of 20, 20 and 5', function () {
    const entries = Array.from({ length: 45 }, (_, index) => ({
      productKey: SUB_PK,
      deviceName: sub(index + 1),
      properties: { a: index },
    }));
    const posts = splitPack(entries, 1);
    assert.deepEqual(
      posts.map((post) => subDevicesOf(post).length),
      [20, 20, 5],
    );
    assert.deepEqual(
      posts.flatMap((post) => subDevicesOf(post).map((entry) => (entry.identity as { deviceName: string }).deviceName)),
      entries.map((entry) => entry.deviceName),
      'every sub-device once, in order',
    );
  });

  it('splits one entry of 250 properties and 25 events so that no post passes a limit and nothing is lost', function () {
    const wide = {
      productKey: SUB_PK,
      deviceName: sub(1),
      properties: numbered('p', 250),
      events: numbered('e', 25, (n) => ({ value: { n } })),
    };
    const posts = splitPack([wide], 1);
    assert.ok(withinLimits(posts));
    assert.equal(posts.length, 2);
    assert.equal(total(posts, 'properties'), 250);
    assert.equal(total(posts, 'events'), 25);
  });

  it('keeps 200 properties across many sub-devices within each post, gateway entry included', function () {
    const entries = [
      { properties: numbered('own', 30) },
      ...Array.from({ length: 19 }, (_, index) => ({ productKey: SUB_PK, deviceName: sub(index + 1), properties: numbered('p', 15) })),
    ];
    const posts = splitPack(entries, 1);
    assert.ok(withinLimits(posts));
    assert.deepEqual(
      posts.map((post) => count(post, 'properties')),
      [200, 115],
    );
  });

  it('exactly at the limits makes one post', function () {
    const entries = Array.from({ length: 20 }, (_, index) => ({
      productKey: SUB_PK,
      deviceName: sub(index + 1),
      properties: numbered('p', 10),
      events: { alarm: { value: {} } },
    }));
    assert.equal(splitPack(entries, 1).length, 1);
  });

  it('refuses what is not a pack: no array, empty, nothing to post, an entry of the wrong shape, bad identifiers', function () {
    assert.equal(
      code(() => packEntries({ properties: {} })),
      'PACK_INVALID',
    );
    assert.equal(
      code(() => packEntries([])),
      'PACK_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ properties: {} }, { productKey: SUB_PK, deviceName: sub(1) }])),
      'PACK_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ properties: { a: 1 } }, 'x'])),
      'PACK_ENTRY_INVALID',
    );
    assert.equal(
      code(() => packEntries([null])),
      'PACK_ENTRY_INVALID',
    );
    assert.equal(
      code(() => packEntries([[{ a: 1 }]])),
      'PACK_ENTRY_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ productKey: SUB_PK, properties: { a: 1 } }])),
      'PACK_ENTRY_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ properties: [1, 2] }])),
      'PACK_ENTRY_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ properties: { a: 1 }, events: 'boot' }])),
      'PACK_ENTRY_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ productKey: 'short', deviceName: sub(1), properties: { a: 1 } }])),
      'PRODUCT_KEY_INVALID',
    );
    assert.equal(
      code(() => packEntries([{ productKey: SUB_PK, deviceName: 'a/b', properties: { a: 1 } }])),
      'DEVICE_NAME_INVALID',
    );
    const error = (() => {
      try {
        packEntries([{ properties: { a: 1 } }, 7]);
      } catch (err) {
        return err as AliyunIotError;
      }
      return undefined;
    })();
    assert.deepEqual(error?.params, { index: 1 }, 'the error names the entry');
  });

  it('builds the request on the gateway topic with the method and the ack asked for', function () {
    const request = buildPackPost(GATEWAY, '9', { properties: {}, events: {} }, false);
    assert.equal(request.topic, '/sys/a1GateWay01/gw01/thing/event/property/pack/post');
    assert.deepEqual(JSON.parse(request.payload), {
      id: '9',
      version: '1.0',
      sys: { ack: 0 },
      params: { properties: {}, events: {} },
      method: 'thing.event.property.pack.post',
    });
  });
});
