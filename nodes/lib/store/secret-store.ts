// DeviceSecrets a gateway obtained for its sub-devices (thing/sub/register), kept in one file encrypted with
// AES-256-GCM. The key is derived (scrypt, salt in the file) from a passphrase when one is given (Node-RED's
// credentialSecret), else it is 32 random bytes in a key file beside the store, created with mode 0600.
//
// File: JSON {format, version, keySource, salt, keyCheck, iv, tag, data}; `data` is the encrypted JSON of
// {"<productKey>/<deviceName>": "<deviceSecret>"}, the header fields are its additional authenticated data, and
// `keyCheck` (an HMAC of a constant under the key) tells a wrong key from a damaged file. Writes go to a temporary
// file, fsync, then rename: a reader sees the old or the new store, never half of one.
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AliyunIotError } from '../errors';
import { deviceKey } from '../protocol/alink';

const FORMAT = 'aliyun-iot-subdevice-secrets';
const VERSION = 1;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const SALT_BYTES = 16;

export type SecretKeySource = 'passphrase' | 'key-file';

export interface SecretStoreOptions {
  /** The store's file, e.g. `<userDir>/aliyun-iot/subdevices/<connection id>.json`. */
  file: string;
  /** Node-RED's credentialSecret; absent or empty: a key file `<file without .json>.key` beside the store. */
  passphrase?: string;
}

interface StoreFile {
  format: string;
  version: number;
  keySource: SecretKeySource;
  salt: string;
  keyCheck: string;
  iv: string;
  tag: string;
  data: string;
}

export interface StoredSecret {
  productKey: string;
  deviceName: string;
  deviceSecret: string;
}

function keyFileOf(file: string): string {
  return path.join(path.dirname(file), `${path.basename(file, '.json')}.key`);
}

function keyCheckOf(key: Buffer): string {
  return createHmac('sha256', key).update(`${FORMAT} key check`).digest('base64');
}

function additionalData(header: Pick<StoreFile, 'format' | 'version' | 'keySource' | 'salt' | 'keyCheck'>): Buffer {
  return Buffer.from(JSON.stringify([header.format, header.version, header.keySource, header.salt, header.keyCheck]));
}

function readJson(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new AliyunIotError('SECRET_STORE_DAMAGED', { file: path.basename(file) });
  }
}

function isStoreFile(value: unknown): value is StoreFile {
  const record = (value ?? {}) as Record<string, unknown>;
  return (
    record.format === FORMAT &&
    record.version === VERSION &&
    (record.keySource === 'passphrase' || record.keySource === 'key-file') &&
    ['salt', 'keyCheck', 'iv', 'tag', 'data'].every((field) => typeof record[field] === 'string')
  );
}

/** The key file's key, made (mode 0600, never replacing one) when `create`; a missing one is an error otherwise. */
function keyFromFile(file: string, create: boolean): Buffer {
  const keyFile = keyFileOf(file);
  if (create) {
    try {
      fs.writeFileSync(keyFile, randomBytes(KEY_BYTES).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  let text: string;
  try {
    text = fs.readFileSync(keyFile, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new AliyunIotError('SECRET_STORE_KEY_MISSING', { file: path.basename(keyFile) });
    throw err;
  }
  if (!/^[0-9a-f]{64}$/.test(text)) throw new AliyunIotError('SECRET_STORE_KEY_INVALID', { file: path.basename(keyFile) });
  return Buffer.from(text, 'hex');
}

/** An encrypted map of sub-device secrets; opened synchronously, written in order. */
export class SecretStore {
  private readonly secrets: Map<string, StoredSecret>;
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly keySource: SecretKeySource,
    private readonly key: Buffer,
    private readonly salt: Buffer,
    secrets: StoredSecret[],
  ) {
    this.secrets = new Map(secrets.map((entry) => [deviceKey(entry), entry]));
  }

  /**
   * Opens the store, or starts an empty one when the file does not exist. A file that is not a store (torn, not
   * JSON) is SECRET_STORE_DAMAGED, one encrypted with another key SECRET_STORE_WRONG_KEY, one whose contents were
   * changed SECRET_STORE_TAMPERED; the file is then left as it is.
   */
  static open(options: SecretStoreOptions): SecretStore {
    const { file } = options;
    const passphrase = options.passphrase === '' ? undefined : options.passphrase;
    const keySource: SecretKeySource = passphrase === undefined ? 'key-file' : 'passphrase';
    const name = path.basename(file);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      const salt = randomBytes(SALT_BYTES);
      const key = passphrase === undefined ? keyFromFile(file, true) : scryptSync(passphrase, salt, KEY_BYTES);
      return new SecretStore(file, keySource, key, salt, []);
    }
    const stored = readJson(file);
    if (!isStoreFile(stored)) throw new AliyunIotError('SECRET_STORE_DAMAGED', { file: name });
    if (stored.keySource !== keySource) throw new AliyunIotError('SECRET_STORE_WRONG_KEY', { file: name });
    const salt = Buffer.from(stored.salt, 'base64');
    const key = passphrase === undefined ? keyFromFile(file, false) : scryptSync(passphrase, salt, KEY_BYTES);
    const check = Buffer.from(keyCheckOf(key), 'base64');
    const storedCheck = Buffer.from(stored.keyCheck, 'base64');
    if (check.length !== storedCheck.length || !timingSafeEqual(check, storedCheck)) {
      throw new AliyunIotError('SECRET_STORE_WRONG_KEY', { file: name });
    }
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(stored.iv, 'base64'));
      decipher.setAAD(additionalData(stored));
      decipher.setAuthTag(Buffer.from(stored.tag, 'base64'));
      plain = Buffer.concat([decipher.update(Buffer.from(stored.data, 'base64')), decipher.final()]);
    } catch {
      throw new AliyunIotError('SECRET_STORE_TAMPERED', { file: name });
    }
    const entries = JSON.parse(plain.toString('utf8')) as Record<string, string>;
    const secrets = Object.entries(entries).map(([device, deviceSecret]) => {
      const at = device.indexOf('/');
      return { productKey: device.slice(0, at), deviceName: device.slice(at + 1), deviceSecret };
    });
    return new SecretStore(file, keySource, key, salt, secrets);
  }

  secretOf(device: { productKey: string; deviceName: string }): string | undefined {
    return this.secrets.get(deviceKey(device))?.deviceSecret;
  }

  /** The devices with a stored secret (without it). */
  devices(): Array<{ productKey: string; deviceName: string }> {
    return [...this.secrets.values()].map(({ productKey, deviceName }) => ({ productKey, deviceName }));
  }

  get size(): number {
    return this.secrets.size;
  }

  /** Keeps the secrets (replacing older ones of the same devices); resolves once they are on disk. */
  put(entries: StoredSecret[]): Promise<void> {
    for (const { productKey, deviceName, deviceSecret } of entries) {
      this.secrets.set(deviceKey({ productKey, deviceName }), { productKey, deviceName, deviceSecret });
    }
    return this.save();
  }

  delete(devices: Array<{ productKey: string; deviceName: string }>): Promise<void> {
    for (const device of devices) this.secrets.delete(deviceKey(device));
    return this.save();
  }

  /** Resolves once every write begun so far has ended. */
  flushed(): Promise<void> {
    return this.writing;
  }

  /** Each write encrypts the whole map as it is when the write begins, after the writes before it. */
  private save(): Promise<void> {
    const write = this.writing.then(() =>
      this.write().catch((err: Error) => {
        throw new AliyunIotError('SECRET_STORE_WRITE_FAILED', { file: path.basename(this.file), reason: err.message });
      }),
    );
    this.writing = write.catch(() => undefined);
    return write;
  }

  private async write(): Promise<void> {
    const header = {
      format: FORMAT,
      version: VERSION,
      keySource: this.keySource,
      salt: this.salt.toString('base64'),
      keyCheck: keyCheckOf(this.key),
    };
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(additionalData(header));
    const plain = JSON.stringify(Object.fromEntries([...this.secrets].map(([device, entry]) => [device, entry.deviceSecret])));
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const stored: StoreFile = {
      ...header,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
    const temporary = `${this.file}.tmp`;
    const handle = await fs.promises.open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(stored));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(temporary, this.file);
  }
}

const opened = new Map<string, { store: SecretStore; users: number }>();

export interface HeldSecretStore {
  store: SecretStore;
  /** Gives the store back; the last holder's release forgets it (after its writes), so the next open reads the file. */
  release(): Promise<void>;
}

/** The store of a file, opened once while anyone holds it: two holders never write over each other's secrets. */
export function holdSecretStore(options: SecretStoreOptions): HeldSecretStore {
  const id = path.resolve(options.file);
  let entry = opened.get(id);
  if (!entry) {
    entry = { store: SecretStore.open(options), users: 0 };
    opened.set(id, entry);
  }
  entry.users += 1;
  const held = entry;
  let released = false;
  return {
    store: held.store,
    release: async () => {
      if (released) return;
      released = true;
      held.users -= 1;
      if (held.users === 0 && opened.get(id) === held) opened.delete(id);
      await held.store.flushed();
    },
  };
}
