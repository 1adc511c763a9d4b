import { strict as assert } from 'node:assert';
import CryptoJS from 'crypto-js';
import {
  SignMethod,
  endpointUrl,
  hmacHex,
  iotEndpoint,
  iotSignedText,
  mqClientId,
  mqEndpoint,
  parseAmqpUsername,
  parseIotClientId,
  parseMqClientId,
  parseMqTokenPassword,
  parseMqUsername,
  percentEncode,
  signAmqpLogin,
  signIotLogin,
  signMqLogin,
  signatureV1,
  signedParams,
  verifyAmqpPassword,
  verifyIotLogin,
  verifyMqSignature,
  verifySignatureV1,
} from '../../nodes/lib/protocol';
import { AliyunIotError } from '../../nodes/lib/errors';

const device = { productKey: 'a1B2c3D4e5F', deviceName: 'dev01', deviceSecret: 'secret123' };

/**
 * The signing code as the seed articles write it (crypto-js, options sorted by key, key+value joined): an
 * implementation independent of nodes/lib/auth.ts.
 */
function seedArticleSign(options: Record<string, string>, deviceSecret: string, signMethod: SignMethod): string {
  const contentStr = Object.keys(options)
    .sort()
    .map((key) => key + options[key])
    .join('');
  const hmac = { hmacsha1: CryptoJS.HmacSHA1, hmacsha256: CryptoJS.HmacSHA256, hmacmd5: CryptoJS.HmacMD5 }[signMethod];
  return hmac(contentStr, deviceSecret).toString();
}

function rejectsWith(code: string, action: () => unknown): void {
  assert.throws(action, (err: unknown) => err instanceof AliyunIotError && err.code === code);
}

describe('auth: IoT Platform device signing', function () {
  const vectors: Array<[SignMethod, string]> = [
    ['hmacsha1', 'caa36817513de0678da76ecf60e5e17a57c4e866'],
    ['hmacsha256', '095c413d9c09331365d0c95be963156120feb794cf9c02dd4e553a962f40d127'],
    ['hmacmd5', '9a607df276074f2bfa3a29874beb020a'],
  ];

  it('builds the signed text from the present fields in sorted key order', function () {
    assert.equal(
      iotSignedText({ clientId: 'c1', deviceName: 'dev01', productKey: 'a1B2c3D4e5F', timestamp: '1700000000000' }),
      'clientIdc1deviceNamedev01productKeya1B2c3D4e5Ftimestamp1700000000000',
    );
    assert.equal(iotSignedText({ deviceName: 'd', productKey: 'p' }), 'deviceNamedproductKeyp');
  });

  for (const [signMethod, password] of vectors) {
    it(`matches the §7 vector for ${signMethod} with timestamp`, function () {
      const login = signIotLogin(device, { clientId: 'c1', signMethod, timestamp: 1700000000000, securemode: 2 });
      assert.equal(login.password, password);
      assert.equal(login.clientId, `c1|securemode=2,signmethod=${signMethod},timestamp=1700000000000|`);
      assert.equal(login.username, 'dev01&a1B2c3D4e5F');
    });

    it(`agrees with the seed articles' crypto-js code for ${signMethod}`, function () {
      const options = { productKey: device.productKey, deviceName: device.deviceName, clientId: 'c1', timestamp: '1700000000000' };
      assert.equal(seedArticleSign(options, device.deviceSecret, signMethod), password);
      for (const timestamp of ['1', '1732000000000', '2524608000000']) {
        const seed = seedArticleSign({ ...options, clientId: 'abc:12:ef', timestamp }, 'Zz9-secret', signMethod);
        const ours = signIotLogin(
          { ...device, deviceSecret: 'Zz9-secret' },
          { clientId: 'abc:12:ef', signMethod, timestamp, securemode: 3 },
        );
        assert.equal(ours.password, seed);
      }
    });
  }

  it('matches the §7 vector without timestamp (hmacsha256)', function () {
    const login = signIotLogin(device, { clientId: 'c1', signMethod: 'hmacsha256', timestamp: null, securemode: 2 });
    assert.equal(login.clientId, 'c1|securemode=2,signmethod=hmacsha256|');
    assert.equal(login.password, '5ec2f4b506cdc6514ab53fc0b86a34adc0c7d04e5f655f248c3106d4b29be3e3');
    const seed = seedArticleSign({ productKey: 'a1B2c3D4e5F', deviceName: 'dev01', clientId: 'c1' }, 'secret123', 'hmacsha256');
    assert.equal(seed, login.password);
  });

  it('matches the §7 Node SDK style vector (clientId pk&dn, hmacsha1)', function () {
    const login = signIotLogin(device, { clientId: 'a1B2c3D4e5F&dev01', signMethod: 'hmacsha1', timestamp: 1700000000000, securemode: 3 });
    assert.equal(login.password, '3f62d00a869e2a5ba6661b4c923f5bdc88caf81d');
  });

  it("matches Alibaba Cloud's published sample (DOC-73742)", function () {
    const text = iotSignedText({ clientId: '12345', deviceName: 'device', productKey: 'pk', timestamp: '789' });
    assert.equal(hmacHex('hmacsha1', 'secret', text).toUpperCase(), 'FAFD82A3D602B37FB0FA8B7892F24A477F851A14');
  });

  it('defaults to hmacsha256, ${productKey}.${deviceName} and a fresh millisecond timestamp', function () {
    const before = Date.now();
    const login = signIotLogin(device, { securemode: 2, extra: { ext: '1' } });
    const parsed = parseIotClientId(login.clientId);
    assert.ok(parsed);
    assert.equal(parsed.clientId, 'a1B2c3D4e5F.dev01');
    assert.equal(parsed.params.signmethod, 'hmacsha256');
    assert.equal(parsed.params.ext, '1');
    assert.ok(Number(parsed.params.timestamp) >= before && Number(parsed.params.timestamp) <= Date.now());
  });

  it('refuses malformed identities before signing', function () {
    rejectsWith('PRODUCT_KEY_INVALID', () => signIotLogin({ ...device, productKey: 'a1B2 c3D4e5' }, { securemode: 2 }));
    rejectsWith('DEVICE_NAME_INVALID', () => signIotLogin({ ...device, deviceName: 'd$' }, { securemode: 2 }));
    rejectsWith('CLIENT_ID_INVALID', () => signIotLogin(device, { clientId: 'a|b', securemode: 2 }));
    rejectsWith('CLIENT_ID_INVALID', () => signIotLogin(device, { clientId: 'x'.repeat(65), securemode: 2 }));
    rejectsWith('CREDENTIAL_MISSING', () => signIotLogin({ ...device, deviceSecret: '' }, { securemode: 2 }));
  });
});

describe('auth: endpoints', function () {
  it('derives the old public instance host from the region', function () {
    const endpoint = iotEndpoint({ productKey: 'a1B2c3D4e5F', region: 'cn-beijing', protocol: 'mqtts' });
    assert.equal(endpointUrl(endpoint), 'mqtts://a1B2c3D4e5F.iot-as-mqtt.cn-beijing.aliyuncs.com:1883');
    assert.equal(iotEndpoint({ productKey: 'a1B2c3D4e5F', protocol: 'mqtt' }).host, 'a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com');
  });

  it('derives new and Enterprise instance hosts from the instance id', function () {
    const endpoint = iotEndpoint({ productKey: 'a1B2c3D4e5F', instanceId: 'iot-06z00abc', protocol: 'wss' });
    assert.equal(endpointUrl(endpoint), 'wss://iot-06z00abc.mqtt.iothub.aliyuncs.com:443/mqtt');
  });

  it("uses each protocol's default port and honours host and port overrides", function () {
    const ports = (['mqtts', 'mqtt', 'wss', 'ws'] as const).map((protocol) => iotEndpoint({ productKey: 'a1B2c3D4e5F', protocol }).port);
    assert.deepEqual(ports, [1883, 1883, 443, 443]);
    const local = iotEndpoint({ productKey: 'a1B2c3D4e5F', protocol: 'mqtt', host: '127.0.0.1', port: 1884 });
    assert.equal(endpointUrl(local), 'mqtt://127.0.0.1:1884');
    rejectsWith('PORT_INVALID', () => iotEndpoint({ productKey: 'a1B2c3D4e5F', protocol: 'mqtt', port: 70000 }));
    rejectsWith('REGION_INVALID', () => iotEndpoint({ productKey: 'a1B2c3D4e5F', protocol: 'mqtt', region: 'shanghai' }));
  });

  it('derives ApsaraMQ endpoints for the four protocols', function () {
    const urls = (['mqtts', 'mqtt', 'wss', 'ws'] as const).map((protocol) =>
      endpointUrl(mqEndpoint({ instanceId: 'post-cn-abc', protocol })),
    );
    assert.deepEqual(urls, [
      'mqtts://post-cn-abc.mqtt.aliyuncs.com:8883',
      'mqtt://post-cn-abc.mqtt.aliyuncs.com:1883',
      'wss://post-cn-abc.mqtt.aliyuncs.com:443/mqtt',
      'ws://post-cn-abc.mqtt.aliyuncs.com:80/mqtt',
    ]);
  });
});

describe('auth: ApsaraMQ for MQTT', function () {
  it('matches the §7 Signature / DeviceCredential vector', function () {
    const login = signMqLogin({
      authMode: 'signature',
      instanceId: 'post-cn-test',
      clientId: 'GID_test@@@dev01',
      accessKeyId: 'AK',
      accessKeySecret: 'sk123',
    });
    assert.equal(login.password, 'VRBNE0iQ4PIpH4r2lD7owUu+14Y=');
    assert.equal(login.username, 'Signature|AK|post-cn-test');
    assert.equal(CryptoJS.HmacSHA1('GID_test@@@dev01', 'sk123').toString(CryptoJS.enc.Base64), login.password);
    const credential = signMqLogin({
      authMode: 'device-credential',
      instanceId: 'post-cn-test',
      clientId: 'GID_test@@@dev01',
      accessKeyId: 'DC.1',
      accessKeySecret: 'sk123',
    });
    assert.equal(credential.username, 'DeviceCredential|DC.1|post-cn-test');
    assert.equal(credential.password, 'VRBNE0iQ4PIpH4r2lD7owUu+14Y=');
  });

  it('sends tokens as RW|token, or as given when already typed', function () {
    const base = { authMode: 'token' as const, instanceId: 'post-cn-test', clientId: 'GID_test@@@d', accessKeyId: 'AK' };
    assert.equal(signMqLogin({ ...base, token: 'tok1' }).password, 'RW|tok1');
    assert.equal(signMqLogin({ ...base, token: 'R|a|W|b' }).password, 'R|a|W|b');
    assert.equal(signMqLogin({ ...base, token: 'tok1' }).username, 'Token|AK|post-cn-test');
    rejectsWith('CREDENTIAL_MISSING', () => signMqLogin({ ...base }));
  });

  it('validates GroupID@@@DeviceID', function () {
    assert.equal(mqClientId('GID_test', 'dev-01'), 'GID_test@@@dev-01');
    assert.equal(mqClientId('GID-abc', 'x'), 'GID-abc@@@x');
    rejectsWith('GROUP_ID_INVALID', () => mqClientId('test', 'd'));
    rejectsWith('GROUP_ID_INVALID', () => mqClientId('GID_ab', 'd'));
    rejectsWith('GROUP_ID_INVALID', () => mqClientId('GID_a b', 'd'));
    rejectsWith('DEVICE_ID_INVALID', () => mqClientId('GID_test', 'a@b'));
    rejectsWith('CLIENT_ID_TOO_LONG', () => mqClientId('GID_test', 'd'.repeat(60)));
    rejectsWith('CONFIG_MISSING', () => mqClientId(undefined, 'd'));
    assert.deepEqual(parseMqClientId('GID_test@@@dev01'), { groupId: 'GID_test', deviceId: 'dev01' });
    assert.equal(parseMqClientId('dev01'), undefined);
  });

  it('parses usernames and token passwords', function () {
    assert.deepEqual(parseMqUsername('Token|AK|post-cn-x'), { authMode: 'token', accessKeyId: 'AK', instanceId: 'post-cn-x' });
    assert.equal(parseMqUsername('dev01&a1B2c3D4e5F'), undefined);
    assert.equal(parseMqUsername('Other|AK|x'), undefined);
    assert.deepEqual(parseMqTokenPassword('R|a|W|b'), [
      { actions: 'R', token: 'a' },
      { actions: 'W', token: 'b' },
    ]);
    assert.equal(parseMqTokenPassword('X|a'), undefined);
    assert.equal(parseMqTokenPassword('RW|'), undefined);
    assert.ok(verifyMqSignature('GID_test@@@dev01', 'sk123', 'VRBNE0iQ4PIpH4r2lD7owUu+14Y='));
    assert.ok(!verifyMqSignature('GID_test@@@dev01', 'sk124', 'VRBNE0iQ4PIpH4r2lD7owUu+14Y='));
  });
});

describe("auth: the simulator's parser and verifier", function () {
  const lookup = (pk: string, dn: string): string | undefined => (pk === 'a1B2c3D4e5F' && dn === 'dev01' ? 'secret123' : undefined);
  const password = 'caa36817513de0678da76ecf60e5e17a57c4e866';

  it('accepts extra keys, spaces, newlines, a trailing comma and either hex case', function () {
    const variants = [
      'c1|securemode=2,signmethod=hmacsha1,timestamp=1700000000000|',
      'c1|securemode=2, signmethod=hmacsha1 ,timestamp=1700000000000,_v=1.2.8,lan=NODEJS,|',
      '\n        c1|securemode=3,\n        signmethod=hmacsha1,\n        timestamp=1700000000000|\n      ',
      'c1|gw=0,ext=1,_ss=1,instanceId=iot-x,signmethod=hmacsha1,timestamp=1700000000000,securemode=2|',
    ];
    for (const clientId of variants) {
      for (const pw of [password, password.toUpperCase()]) {
        const verdict = verifyIotLogin({ clientId, username: 'dev01&a1B2c3D4e5F', password: pw }, lookup);
        assert.ok(verdict.ok, `${JSON.stringify(clientId)} should be accepted`);
        assert.equal(verdict.clientId, 'c1');
      }
    }
  });

  it('treats a missing signmethod as hmacmd5', function () {
    const md5 = verifyIotLogin(
      { clientId: 'c1|securemode=2,timestamp=1700000000000|', username: 'dev01&a1B2c3D4e5F', password: '9a607df276074f2bfa3a29874beb020a' },
      lookup,
    );
    assert.ok(md5.ok);
    const sha1 = verifyIotLogin({ clientId: 'c1|securemode=2,timestamp=1700000000000|', username: 'dev01&a1B2c3D4e5F', password }, lookup);
    assert.deepEqual(sha1, { ok: false, returnCode: 5, reason: 'bad-signature' });
  });

  it('answers each kind of bad login with its CONNACK code', function () {
    const good = { clientId: 'c1|securemode=2,signmethod=hmacsha1,timestamp=1700000000000|', username: 'dev01&a1B2c3D4e5F', password };
    const cases: Array<[Partial<typeof good>, number, string]> = [
      [{ clientId: 'c1' }, 2, 'client-id-format'],
      [{ clientId: 'c1|securemode=2,bogus|' }, 2, 'client-id-format'],
      [{ clientId: 'c1|signmethod=hmacsha512|' }, 2, 'sign-method'],
      [{ username: 'dev01' }, 4, 'username-format'],
      [{ username: 'dev99&a1B2c3D4e5F' }, 4, 'unknown-device'],
      [{ password: password.replace('c', 'd') }, 5, 'bad-signature'],
    ];
    for (const [change, returnCode, reason] of cases) {
      assert.deepEqual(verifyIotLogin({ ...good, ...change }, lookup), { ok: false, returnCode, reason });
    }
  });

  it('verifies what signIotLogin produces, for every method and with or without timestamp', function () {
    for (const signMethod of ['hmacsha256', 'hmacsha1', 'hmacmd5'] as const) {
      for (const timestamp of [null, 1700000000000]) {
        const login = signIotLogin(device, { signMethod, timestamp, securemode: 3 });
        assert.ok(verifyIotLogin(login, lookup).ok, `${signMethod} ${timestamp}`);
      }
    }
  });
});

describe('auth: cloud application (AMQP aksign, OpenAPI signature v1)', function () {
  it('matches the §7 AMQP vector and reads back its own username', function () {
    const login = signAmqpLogin({
      clientId: 'nodered-1',
      accessKeyId: 'AKID',
      accessKeySecret: 'AKSECRET',
      consumerGroupId: 'DEFAULT_GROUP',
      iotInstanceId: 'iot-06z00x',
      timestamp: 1700000000000,
    });
    assert.equal(login.password, 'bhj26H54jhQI9/bmzhWKbRAck70=');
    assert.equal(
      login.username,
      'nodered-1|authMode=aksign,signMethod=hmacsha1,timestamp=1700000000000,authId=AKID,iotInstanceId=iot-06z00x,consumerGroupId=DEFAULT_GROUP|',
    );
    const parsed = parseAmqpUsername(login.username);
    assert.deepEqual(parsed, {
      clientId: 'nodered-1',
      timestamp: '1700000000000',
      accessKeyId: 'AKID',
      iotInstanceId: 'iot-06z00x',
      consumerGroupId: 'DEFAULT_GROUP',
      signMethod: 'hmacsha1',
      authMode: 'aksign',
    });
    assert.ok(parsed && verifyAmqpPassword(parsed, 'AKSECRET', login.password));
    assert.ok(parsed && !verifyAmqpPassword(parsed, 'OTHER', login.password));
    assert.equal(CryptoJS.HmacSHA1('authId=AKID&timestamp=1700000000000', 'AKSECRET').toString(CryptoJS.enc.Base64), login.password);
    assert.equal(parseAmqpUsername('plain-user'), undefined);
  });

  const vectorParams = {
    AccessKeyId: 'testid',
    SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf',
    Timestamp: '2023-11-14T22:13:20Z',
    RegionId: 'cn-shanghai',
    Action: 'Pub',
    ProductKey: 'a1B2c3D4e5F',
    TopicFullName: '/a1B2c3D4e5F/dev01/user/get',
    MessageContent: 'aGVsbG8=',
    Qos: '0',
    Format: 'JSON',
    Version: '2018-01-20',
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
  };

  it('matches the §7 OpenAPI signature v1 vector, and signedParams builds the same request', function () {
    assert.equal(signatureV1('GET', vectorParams, 'testsecret'), 'hvWJKpanmbCemd86tuzYYNKm5SQ=');
    const built = signedParams({
      accessKeyId: 'testid',
      accessKeySecret: 'testsecret',
      action: 'Pub',
      regionId: 'cn-shanghai',
      method: 'GET',
      nonce: vectorParams.SignatureNonce,
      timestamp: vectorParams.Timestamp,
      params: { ProductKey: 'a1B2c3D4e5F', TopicFullName: '/a1B2c3D4e5F/dev01/user/get', MessageContent: 'aGVsbG8=', Qos: 0 },
    });
    assert.equal(built.Signature, 'hvWJKpanmbCemd86tuzYYNKm5SQ=');
    assert.ok(verifySignatureV1('GET', built, 'testsecret'));
    assert.ok(!verifySignatureV1('POST', built, 'testsecret'));
  });

  it('agrees with an independent crypto-js implementation of the signing steps', function () {
    const encode = (text: string): string =>
      encodeURIComponent(text).replace(/!/g, '%21').replace(/'/g, '%27').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\*/g, '%2A');
    const params = { ...vectorParams, TopicFullName: "/a1B2c3D4e5F/dev01/user/it's (a) *test*! ~", MessageContent: '5L2g5aW9' };
    const canonical = Object.keys(params)
      .sort()
      .map((key) => `${encode(key)}=${encode(params[key as keyof typeof params])}`)
      .join('&');
    const expected = CryptoJS.HmacSHA1(`POST&${encode('/')}&${encode(canonical)}`, 'testsecret&').toString(CryptoJS.enc.Base64);
    assert.equal(signatureV1('POST', params, 'testsecret'), expected);
    assert.equal(percentEncode("a b!'()*~"), 'a%20b%21%27%28%29%2A~');
  });
});
