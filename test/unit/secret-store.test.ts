// The encrypted store of registered sub-device secrets: what survives a restart, and how a damaged, tampered or
// foreign file is refused (and left as it is).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AliyunIotError } from '../../nodes/lib/errors';
import { SecretStore, holdSecretStore } from '../../nodes/lib/store';

const SECRET = { productKey: 'a1SubDev001', deviceName: 'new0001', deviceSecret: 'registered-secret-0001' };

function refusedWith(code: string): (err: unknown) => boolean {
  return (err) => err instanceof AliyunIotError && err.code === code && !err.message.includes(SECRET.deviceSecret);
}

describe('sub-device secret store', function () {
  let dir: string;
  let file: string;
  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-secrets-'));
    file = path.join(dir, 'subdevices', 'gw.json');
  });
  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps secrets across a restart, encrypted, with a key file of mode 0600 beside the store', async function () {
    const store = SecretStore.open({ file });
    assert.equal(store.secretOf(SECRET), undefined);
    await store.put([SECRET]);
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(!text.includes(SECRET.deviceSecret) && !text.includes(SECRET.deviceName), 'nothing readable in the file');
    const keyFile = path.join(dir, 'subdevices', 'gw.key');
    if (process.platform !== 'win32') {
      assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    }
    const reopened = SecretStore.open({ file });
    assert.equal(reopened.secretOf(SECRET), SECRET.deviceSecret);
    assert.deepEqual(reopened.devices(), [{ productKey: SECRET.productKey, deviceName: SECRET.deviceName }]);
    await reopened.delete([SECRET]);
    assert.equal(SecretStore.open({ file }).size, 0);
  });

  it('derives the key from a passphrase, and refuses another passphrase or the key file', async function () {
    await SecretStore.open({ file, passphrase: 'credential secret' }).put([SECRET]);
    assert.ok(!fs.existsSync(path.join(dir, 'subdevices', 'gw.key')), 'no key file with a passphrase');
    assert.equal(SecretStore.open({ file, passphrase: 'credential secret' }).secretOf(SECRET), SECRET.deviceSecret);
    assert.throws(() => SecretStore.open({ file, passphrase: 'another secret' }), refusedWith('SECRET_STORE_WRONG_KEY'));
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_WRONG_KEY'));
  });

  it('refuses a store whose key file was replaced or lost, and a key file without a key', async function () {
    await SecretStore.open({ file }).put([SECRET]);
    const keyFile = path.join(dir, 'subdevices', 'gw.key');
    fs.writeFileSync(keyFile, 'ab'.repeat(32));
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_WRONG_KEY'));
    fs.writeFileSync(keyFile, 'not a key');
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_KEY_INVALID'));
    fs.rmSync(keyFile);
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_KEY_MISSING'));
    assert.ok(!fs.existsSync(keyFile), 'no new key made for a store that exists');
  });

  it('refuses a tampered store and leaves it as it is', async function () {
    await SecretStore.open({ file }).put([SECRET]);
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    const data = Buffer.from(stored.data, 'base64');
    data[0] ^= 1;
    const tampered = JSON.stringify({ ...stored, data: data.toString('base64') });
    fs.writeFileSync(file, tampered);
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_TAMPERED'));
    fs.writeFileSync(file, JSON.stringify({ ...stored, keySource: 'key-file', salt: Buffer.alloc(16).toString('base64') }));
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_TAMPERED'));
    fs.writeFileSync(file, tampered);
    assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_TAMPERED'));
    assert.equal(fs.readFileSync(file, 'utf8'), tampered);
  });

  it('refuses a torn or foreign file', async function () {
    await SecretStore.open({ file }).put([SECRET]);
    const whole = fs.readFileSync(file, 'utf8');
    for (const torn of [whole.slice(0, whole.length / 2), '', '{"format":"something else"}', '[]']) {
      fs.writeFileSync(file, torn);
      assert.throws(() => SecretStore.open({ file }), refusedWith('SECRET_STORE_DAMAGED'), JSON.stringify(torn));
      assert.equal(fs.readFileSync(file, 'utf8'), torn);
    }
  });

  it('fails a write it cannot make with SECRET_STORE_WRITE_FAILED, and the next write still goes', async function () {
    const store = SecretStore.open({ file });
    fs.mkdirSync(`${file}.tmp`);
    await assert.rejects(store.put([SECRET]), refusedWith('SECRET_STORE_WRITE_FAILED'));
    fs.rmdirSync(`${file}.tmp`);
    await store.put([SECRET]);
    assert.equal(SecretStore.open({ file }).secretOf(SECRET), SECRET.deviceSecret);
  });

  it('writes in order, and holders of one file share one store until the last lets go', async function () {
    const first = holdSecretStore({ file });
    const second = holdSecretStore({ file });
    assert.equal(first.store, second.store);
    const writes = Array.from({ length: 20 }, (_, index) =>
      first.store.put([{ ...SECRET, deviceName: `new${String(index).padStart(4, '0')}`, deviceSecret: `s${index}` }]),
    );
    await Promise.all(writes);
    await first.release();
    const third = holdSecretStore({ file });
    assert.equal(third.store, second.store, 'still held by the second');
    await second.release();
    await third.release();
    const reopened = holdSecretStore({ file });
    assert.notEqual(reopened.store, second.store, 'read again from the file');
    assert.equal(reopened.store.size, 20);
    assert.equal(reopened.store.secretOf({ productKey: SECRET.productKey, deviceName: 'new0019' }), 's19');
    await reopened.release();
  });
});
