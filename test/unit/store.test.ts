// The durable log on its own: group commit, recovery, acknowledgement, bounds, and what a broken disk looks like.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { AliyunIotError } from '../../nodes/lib/errors';
import { DurableLog, DurableLogOptions, crc32, crc32ByTable } from '../../nodes/lib/store';
// The module object itself, whose functions a test may wrap (the `import *` namespace only has getters).
// eslint-disable-next-line @typescript-eslint/no-require-imports
import nodeFs = require('node:fs');

const OPTIONS: DurableLogOptions = { maxRecords: 100_000, maxBytes: 0 };

function appendAll(log: DurableLog, payloads: Buffer[]): Promise<Array<number | undefined>> {
  return new Promise((resolve, reject) => {
    let left = payloads.length;
    const seqs = payloads.map((payload) =>
      log.append(payload, (error) => {
        if (error) reject(error);
        else if (--left === 0) resolve(seqs);
      }),
    );
  });
}

function appendOne(log: DurableLog, payload: Buffer): Promise<AliyunIotError | undefined> {
  return new Promise((resolve) => log.append(payload, resolve));
}

function closeLog(log: DurableLog): Promise<void> {
  return new Promise((resolve) => log.close(resolve));
}

const texts = (log: DurableLog): string[] => log.recovered.map((record) => record.payload.toString());
const numbered = (count: number, from = 0): Buffer[] => Array.from({ length: count }, (_, i) => Buffer.from(`message ${from + i}`));

function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.log'))
    .sort();
}

describe('store: durable log', function () {
  let dir: string;

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aliyun-iot-store-'));
  });

  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('computes CRC-32 the same with zlib and with the table', function () {
    assert.equal(crc32ByTable(Buffer.from('123456789')), 0xcbf43926);
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff));
    assert.equal(crc32ByTable(data), crc32(data));
    assert.equal(crc32ByTable(data.subarray(500), crc32ByTable(data.subarray(0, 500))), crc32(data));
    if (typeof (zlib as { crc32?: unknown }).crc32 === 'function') assert.equal(crc32, (zlib as { crc32?: unknown }).crc32);
  });

  it('makes many appends durable with few fsyncs and gives them back in order after reopening', async function () {
    const fdatasync = nodeFs.fdatasync;
    let syncs = 0;
    nodeFs.fdatasync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
      syncs++;
      fdatasync(fd, callback);
    }) as typeof fdatasync;
    let log: DurableLog;
    try {
      log = DurableLog.open(dir, OPTIONS);
      assert.deepEqual(log.recovered, []);
      const seqs = await appendAll(log, numbered(5000));
      assert.deepEqual(
        seqs,
        Array.from({ length: 5000 }, (_, i) => i + 1),
      );
    } finally {
      nodeFs.fdatasync = fdatasync;
    }
    assert.ok(syncs >= 1 && syncs <= 50, `${syncs} fsyncs for 5000 appends`);
    assert.equal(log.count, 5000);
    await closeLog(log);
    const reopened = DurableLog.open(dir, OPTIONS);
    assert.deepEqual(texts(reopened), numbered(5000).map(String));
    assert.equal(reopened.damage, undefined);
    assert.equal(
      reopened.bytes,
      numbered(5000).reduce((sum, b) => sum + b.length, 0),
    );
    await closeLog(reopened);
  });

  it('forgets acknowledged records, in any order, and numbers on after them', async function () {
    const log = DurableLog.open(dir, OPTIONS);
    const seqs = (await appendAll(log, numbered(10))) as number[];
    for (const seq of [1, 2, 4, 3, 7]) log.ack(seq);
    log.ack(999);
    assert.equal(log.count, 5);
    await closeLog(log);
    const reopened = DurableLog.open(dir, OPTIONS);
    // The cursor keeps the acknowledged prefix (1-4); 7 was acknowledged past a gap and comes back.
    assert.deepEqual(
      reopened.recovered.map((r) => r.seq),
      seqs.slice(4),
    );
    assert.equal(await appendOne(reopened, Buffer.from('next')), undefined);
    await closeLog(reopened);
    const third = DurableLog.open(dir, OPTIONS);
    assert.deepEqual(
      third.recovered.map((r) => r.seq),
      [5, 6, 7, 8, 9, 10, 11],
    );
    await closeLog(third);
  });

  it('cuts off a torn last write, reports it once, and appends after the last whole record', async function () {
    const log = DurableLog.open(dir, OPTIONS);
    await appendAll(log, numbered(20));
    await closeLog(log);
    const [segment] = segmentFiles(dir);
    const file = path.join(dir, segment);
    const whole = fs.statSync(file).size;
    // A record header announcing 100 bytes, followed by 10 of them: the process died in the middle of a write.
    const torn = Buffer.alloc(26);
    torn.writeUInt32BE(100, 0);
    fs.appendFileSync(file, torn);
    const recovered = DurableLog.open(dir, OPTIONS);
    assert.deepEqual(texts(recovered), numbered(20).map(String));
    assert.deepEqual(recovered.damage, { file: segment, offset: whole, bytes: 26, records: 20 });
    assert.equal(fs.statSync(file).size, whole);
    await appendAll(recovered, numbered(1, 20));
    await closeLog(recovered);
    const again = DurableLog.open(dir, OPTIONS);
    assert.equal(again.damage, undefined);
    assert.deepEqual(texts(again), numbered(21).map(String));
    await closeLog(again);
  });

  it('drops a last record whose checksum does not match, and a tail of zeros', async function () {
    const log = DurableLog.open(dir, OPTIONS);
    await appendAll(log, numbered(5));
    await closeLog(log);
    const file = path.join(dir, segmentFiles(dir)[0]);
    const data = fs.readFileSync(file);
    data[data.length - 1] ^= 0xff;
    fs.writeFileSync(file, Buffer.concat([data, Buffer.alloc(4096)]));
    const recovered = DurableLog.open(dir, OPTIONS);
    assert.deepEqual(texts(recovered), numbered(4).map(String));
    assert.equal(recovered.damage?.records, 4);
    assert.equal(recovered.damage?.bytes, 16 + 'message 4'.length + 4096);
    await closeLog(recovered);
  });

  it('replays everything held when the cursor file is damaged, rather than lose a record', async function () {
    const log = DurableLog.open(dir, OPTIONS);
    await appendAll(log, numbered(6));
    for (const seq of [1, 2, 3]) log.ack(seq);
    await closeLog(log);
    fs.writeFileSync(path.join(dir, 'cursor'), 'garbage');
    const recovered = DurableLog.open(dir, OPTIONS);
    assert.deepEqual(texts(recovered), numbered(6).map(String));
    assert.equal(recovered.damage?.file, 'cursor');
    await closeLog(recovered);
  });

  it('refuses records over its count and byte bounds, and takes them again once others are acknowledged', async function () {
    const log = DurableLog.open(dir, { maxRecords: 3, maxBytes: 25 });
    const seqs = (await appendAll(log, numbered(2))) as number[];
    assert.equal(log.bytes, 18);
    const tooBig = await appendOne(log, Buffer.alloc(8));
    assert.equal(tooBig?.code, 'STORE_FULL_BYTES');
    await appendAll(log, [Buffer.from('x')]);
    const full = await appendOne(log, Buffer.from('y'));
    assert.equal(full?.code, 'STORE_FULL');
    assert.equal(full?.params.size, 3);
    log.ack(seqs[0]);
    assert.equal(await appendOne(log, Buffer.from('y')), undefined);
    await closeLog(log);
    assert.equal((await appendOne(log, Buffer.from('z')))?.code, 'STORE_CLOSED');
  });

  it('rolls to new segments and deletes those wholly acknowledged', async function () {
    const log = DurableLog.open(dir, { ...OPTIONS, segmentBytes: 200, cursorIntervalMs: 0 });
    const seqs: number[] = [];
    for (let batch = 0; batch < 6; batch++) seqs.push(...((await appendAll(log, numbered(10, batch * 10))) as number[]));
    assert.ok(segmentFiles(dir).length >= 5, segmentFiles(dir).join());
    for (const seq of seqs.slice(0, 50)) log.ack(seq);
    await closeLog(log);
    assert.ok(segmentFiles(dir).length <= 2, segmentFiles(dir).join());
    const reopened = DurableLog.open(dir, OPTIONS);
    assert.deepEqual(texts(reopened), numbered(10, 50).map(String));
    await closeLog(reopened);
  });

  it('says clearly that a directory cannot be made where a file is in the way', function () {
    const blocked = path.join(dir, 'not-a-directory');
    fs.writeFileSync(blocked, '');
    assert.throws(
      () => DurableLog.open(path.join(blocked, 'queue'), OPTIONS),
      (err: unknown) => {
        assert.ok(err instanceof AliyunIotError);
        assert.equal(err.code, 'STORE_UNWRITABLE');
        assert.match(err.message, /cannot be written/);
        return true;
      },
    );
  });

  it('fails the appends of a full disk through their callbacks and keeps nothing of them', async function () {
    // Every write to /dev/full fails with ENOSPC.
    fs.symlinkSync('/dev/full', path.join(dir, `${'1'.padStart(20, '0')}.log`));
    const log = DurableLog.open(dir, OPTIONS);
    const errors = await Promise.all(numbered(3).map((payload) => appendOne(log, payload)));
    assert.deepEqual(
      errors.map((err) => err?.code),
      ['STORE_DISK_FULL', 'STORE_DISK_FULL', 'STORE_DISK_FULL'],
    );
    assert.equal(log.count, 0);
    assert.equal(log.bytes, 0);
    assert.equal((await appendOne(log, Buffer.from('later')))?.code, 'STORE_DISK_FULL');
    await closeLog(log);
  });
});
