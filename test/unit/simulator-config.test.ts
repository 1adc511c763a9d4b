import { strict as assert } from 'node:assert';
import { validateConfig } from '../../sim';

import { CLOUD_CONFIG, SIM_CONFIG, demoRegistry } from '../support/registry';

describe('simulator: the cloud section of the config', function () {
  const withCloud = (cloud: unknown): unknown => ({ ...SIM_CONFIG, cloud });

  it('accepts a full cloud section and products with syncServices', function () {
    assert.doesNotThrow(() => validateConfig(CLOUD_CONFIG));
    assert.doesNotThrow(() => validateConfig(withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }] })));
    assert.doesNotThrow(() =>
      validateConfig(
        withCloud({
          instanceId: 'iot-06z00abc',
          accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }],
          consumerGroups: [],
          syncTimeoutMs: 500,
        }),
      ),
    );
  });

  it('names the bad field of a malformed cloud section', function () {
    const cases: Array<[unknown, RegExp]> = [
      [withCloud('yes'), /simulator config: cloud must be an object$/],
      [withCloud([]), /simulator config: cloud must be an object$/],
      [withCloud({}), /cloud\.accessKeys must be an array/],
      [withCloud({ accessKeys: [] }), /cloud\.accessKeys must hold at least one AccessKey/],
      [withCloud({ accessKeys: [{ accessKeyId: 'a' }] }), /cloud\.accessKeys\[0\]\.accessKeySecret must be a non-empty string/],
      [withCloud({ accessKeys: [{ accessKeySecret: 'b' }] }), /cloud\.accessKeys\[0\]\.accessKeyId must be a non-empty string/],
      [
        withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], consumerGroups: 'G' }),
        /cloud\.consumerGroups must be an array/,
      ],
      [
        withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], consumerGroups: ['bad group'] }),
        /cloud\.consumerGroups\[0\] must be a consumer group id/,
      ],
      [withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], uid: 'abc' }), /cloud\.uid must be digits/],
      [
        withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], instanceId: '' }),
        /cloud\.instanceId must be a non-empty string/,
      ],
      [
        withCloud({ accessKeys: [{ accessKeyId: 'a', accessKeySecret: 'b' }], syncTimeoutMs: -1 }),
        /cloud\.syncTimeoutMs must be a positive whole number/,
      ],
      [{ products: [{ productKey: 'pk', devices: [], syncServices: 'getStatus' }] }, /products\[0\]\.syncServices must be an array/],
      [
        { products: [{ productKey: 'pk', devices: [], syncServices: ['get status'] }] },
        /products\[0\]\.syncServices\[0\] must be a service identifier/,
      ],
    ];
    for (const [config, message] of cases) assert.throws(() => validateConfig(config), message);
  });

  it('the demo registry has a cloud AccessKey, a consumer group and a synchronous service', function () {
    const demo = demoRegistry();
    assert.deepEqual(demo.cloud?.accessKeys, [{ accessKeyId: 'LTAI_sim_ak', accessKeySecret: 'sim_secret_1234567890' }]);
    assert.deepEqual(demo.cloud?.consumerGroups, ['DEFAULT_GROUP']);
    assert.deepEqual(demo.products?.[0].syncServices, ['getStatus']);
  });
});
