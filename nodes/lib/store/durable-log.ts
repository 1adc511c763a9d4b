// An append-only, checksummed log of records in segment files, with group commit: every append of one event-loop
// turn (and those that arrive while a write is under way) goes to disk in one write and one fdatasync, and each
// append's callback runs when its batch is durable. Records leave by acknowledgement; the acknowledged prefix is kept
// in a small cursor file, and segments wholly below it are deleted.
//
// Segment file `<first sequence, 20 digits>.log`, records back to back:
//   u32 payload length | u32 CRC-32 of (sequence bytes + payload) | u32 sequence high | u32 sequence low | payload
// Cursor file `cursor`: u32 sequence high | u32 sequence low | u32 CRC-32 of those 8 bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AliyunIotError } from '../errors';
import { crc32 } from './crc32';
import { LiveRecords } from './live-records';

const HEADER_BYTES = 16;
const CURSOR_BYTES = 12;
const SEGMENT_NAME = /^(\d{20})\.log$/;
const CURSOR_FILE = 'cursor';
/** Records of one batch are written into buffers of this size (a larger record gets one of its own). */
const CHUNK_BYTES = 256 * 1024;
/** A length above this is damage, not a record: no MQTT payload comes near it. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
const TWO_32 = 2 ** 32;

export interface DurableLogOptions {
  /** Most records held (appended and not acknowledged); 0: none. */
  maxRecords: number;
  /** Most payload bytes held; 0: no byte limit. */
  maxBytes: number;
  /** A segment that reached this size is closed and a new one begun (default 4 MiB). */
  segmentBytes?: number;
  /** Least time between two writes of the cursor file (default 50 ms). */
  cursorIntervalMs?: number;
}

export interface StoredRecord {
  seq: number;
  payload: Buffer;
}

/** What recovery cut off: reported once, at open. */
export interface DamageReport {
  /** The first damaged file, its name only. */
  file: string;
  offset: number;
  /** Bytes cut off in all files. */
  bytes: number;
  /** Whole records kept. */
  records: number;
}

export type AppendCallback = (error?: AliyunIotError) => void;

/** Writes a record's payload of the announced length at `offset` of `target`. */
export type PayloadWriter = (target: Buffer, offset: number) => void;

/** Writes the payload of `item`'s record at `offset` of `target`: one function for every record, no closure each. */
export type ItemWriter<T> = (target: Buffer, offset: number, item: T) => void;

/** Runs once `item`'s record is on disk, or with the error that kept it off. */
export type ItemCallback<T> = (item: T, error?: AliyunIotError) => void;

interface Segment {
  base: number;
  file: string;
  size: number;
  lastSeq: number;
}

/** Appends waiting for one write: their records back to back in chunks, their sequence numbers, items and callbacks. */
class Batch {
  readonly chunks: Buffer[] = [];
  readonly seqs: number[] = [];
  readonly items: unknown[] = [];
  readonly callbacks: Array<ItemCallback<unknown>> = [];
  private used = 0;

  get size(): number {
    return this.seqs.length;
  }

  add<T>(seq: number, bytes: number, write: ItemWriter<T>, item: T, callback: ItemCallback<T>): void {
    const length = HEADER_BYTES + bytes;
    let chunk = this.chunks[this.chunks.length - 1];
    if (!chunk || this.used + length > chunk.length) {
      if (chunk) this.chunks[this.chunks.length - 1] = chunk.subarray(0, this.used);
      chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, length));
      this.chunks.push(chunk);
      this.used = 0;
    }
    const offset = this.used;
    chunk.writeUInt32BE(bytes, offset);
    writeSeq(chunk, seq, offset + 8);
    write(chunk, offset + HEADER_BYTES, item);
    chunk.writeUInt32BE(crc32(chunk.subarray(offset + 8, offset + length)), offset + 4);
    this.used += length;
    this.seqs.push(seq);
    this.items.push(item);
    this.callbacks.push(callback as ItemCallback<unknown>);
  }

  /** The batch's bytes, for one write. */
  data(): Buffer {
    const last = this.chunks.length - 1;
    this.chunks[last] = this.chunks[last].subarray(0, this.used);
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
  }
}

/** The store's error for a failed file operation: what the user can act on (disk full, not writable) named as such. */
export function storeError(err: unknown, dir: string): AliyunIotError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const reason = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AliyunIotError('STORE_DISK_FULL', { dir });
  if (['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EISDIR'].includes(code)) {
    return new AliyunIotError('STORE_UNWRITABLE', { dir, reason });
  }
  return new AliyunIotError('STORE_IO', { dir, reason });
}

function writeWithOwnWriter(target: Buffer, offset: number, write: PayloadWriter): void {
  write(target, offset);
}

function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.log`;
}

function writeSeq(buffer: Buffer, seq: number, offset: number): void {
  buffer.writeUInt32BE(Math.floor(seq / TWO_32), offset);
  buffer.writeUInt32BE(seq % TWO_32, offset + 4);
}

function readSeq(buffer: Buffer, offset: number): number {
  return buffer.readUInt32BE(offset) * TWO_32 + buffer.readUInt32BE(offset + 4);
}

function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a file's whole records; `end` is where the last whole one ends. Only regular bytes up to its size are read. */
function readRecords(file: string, afterSeq: number): { records: StoredRecord[]; end: number; size: number; lastSeq: number } {
  const fd = fs.openSync(file, 'r');
  let data: Buffer;
  try {
    const size = fs.fstatSync(fd).size;
    data = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = fs.readSync(fd, data, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    data = data.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
  const records: StoredRecord[] = [];
  let offset = 0;
  let lastSeq = afterSeq;
  while (offset + HEADER_BYTES <= data.length) {
    const length = data.readUInt32BE(offset);
    if (length > MAX_RECORD_BYTES || offset + HEADER_BYTES + length > data.length) break;
    const body = data.subarray(offset + 8, offset + HEADER_BYTES + length);
    if (crc32(body) !== data.readUInt32BE(offset + 4)) break;
    const seq = readSeq(data, offset + 8);
    if (seq <= lastSeq) break;
    // A copy: the records outlive the file's buffer.
    records.push({ seq, payload: Buffer.from(data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length)) });
    lastSeq = seq;
    offset += HEADER_BYTES + length;
  }
  return { records, end: offset, size: data.length, lastSeq };
}

function readCursor(file: string): number | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  if (data.length !== CURSOR_BYTES || crc32(data.subarray(0, 8)) !== data.readUInt32BE(8)) return undefined;
  return readSeq(data, 0);
}

export class DurableLog {
  /** The records found at open that were not acknowledged, in order. */
  readonly recovered: StoredRecord[];
  /** What recovery cut off, if anything. */
  readonly damage?: DamageReport;
  private readonly maxRecords: number;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly cursorIntervalMs: number;
  private readonly live = new LiveRecords();
  private readonly segments: Segment[];
  private fd: number;
  private nextSeq: number;
  private batch = new Batch();
  private writing = false;
  private flushScheduled = false;
  /** The acknowledged prefix on disk, and the one to write. */
  private savedCursor: number;
  private cursorWriting = false;
  private cursorTimer?: NodeJS.Timeout;
  private lastCursorWrite = 0;
  private closed = false;
  private closeCallbacks: Array<() => void> = [];

  private constructor(
    readonly dir: string,
    options: DurableLogOptions,
    state: {
      recovered: StoredRecord[];
      damage?: DamageReport;
      segments: Segment[];
      fd: number;
      nextSeq: number;
      cursor: number;
    },
  ) {
    this.maxRecords = options.maxRecords;
    this.maxBytes = options.maxBytes;
    this.segmentBytes = options.segmentBytes ?? 4 * 1024 * 1024;
    this.cursorIntervalMs = options.cursorIntervalMs ?? 50;
    this.recovered = state.recovered;
    this.damage = state.damage;
    this.segments = state.segments;
    this.fd = state.fd;
    this.nextSeq = state.nextSeq;
    this.savedCursor = state.cursor;
    for (const record of state.recovered) this.live.add(record.seq, record.payload.length);
  }

  /**
   * Opens (creating it if needed) the log in `dir` and recovers it: whole records are kept, a torn or damaged tail is
   * cut off (see `damage`). Throws STORE_UNWRITABLE, STORE_DISK_FULL or STORE_IO.
   */
  static open(dir: string, options: DurableLogOptions): DurableLog {
    try {
      fs.mkdirSync(dir, { recursive: true });
      const cursorFile = path.join(dir, CURSOR_FILE);
      const savedCursor = readCursor(cursorFile);
      let damage: DamageReport | undefined =
        savedCursor === undefined ? { file: CURSOR_FILE, offset: 0, bytes: fs.statSync(cursorFile).size, records: 0 } : undefined;
      const cursor = savedCursor ?? 0;
      const names = fs
        .readdirSync(dir)
        .filter((name) => SEGMENT_NAME.test(name))
        .sort();
      const segments: Segment[] = [];
      const recovered: StoredRecord[] = [];
      let lastSeq = cursor;
      let highest = cursor;
      for (const name of names) {
        const file = path.join(dir, name);
        const base = Number((SEGMENT_NAME.exec(name) as RegExpExecArray)[1]);
        const found = readRecords(file, 0);
        if (found.end < found.size) {
          damage = damage ?? { file: name, offset: found.end, bytes: 0, records: 0 };
          damage.bytes += found.size - found.end;
          fs.truncateSync(file, found.end);
        }
        for (const record of found.records) {
          highest = Math.max(highest, record.seq);
          // Out of order across segments is damage too: such records cannot be told apart from replays.
          if (record.seq > lastSeq) {
            lastSeq = record.seq;
            if (record.seq > cursor) recovered.push(record);
          }
        }
        segments.push({ base, file, size: found.end, lastSeq: found.records.length ? found.lastSeq : base - 1 });
      }
      if (damage) damage.records = recovered.length;
      // Wholly acknowledged segments go, except the newest, which is written on.
      for (const segment of segments.slice(0, -1)) {
        if (segment.lastSeq <= cursor) fs.unlinkSync(segment.file);
      }
      const kept = segments.filter((segment, i) => i === segments.length - 1 || segment.lastSeq > cursor);
      const nextSeq = highest + 1;
      let fd: number;
      const active = kept[kept.length - 1];
      if (active && active.size < (options.segmentBytes ?? 4 * 1024 * 1024)) {
        fd = fs.openSync(active.file, 'r+');
      } else {
        const segment = { base: nextSeq, file: path.join(dir, segmentName(nextSeq)), size: 0, lastSeq: nextSeq - 1 };
        fd = fs.openSync(segment.file, 'w');
        fsyncDirectory(dir);
        kept.push(segment);
      }
      return new DurableLog(dir, options, { recovered, damage, segments: kept, fd, nextSeq, cursor });
    } catch (err) {
      if (err instanceof AliyunIotError) throw err;
      throw storeError(err, dir);
    }
  }

  /** Records held: appended (durable or on the way) and not acknowledged. */
  get count(): number {
    return this.live.count;
  }

  /** Payload bytes held. */
  get bytes(): number {
    return this.live.bytes;
  }

  /**
   * Appends a record and returns its sequence number; `callback` runs once its batch is on disk, or with the error
   * (STORE_FULL, STORE_FULL_BYTES, STORE_DISK_FULL, STORE_UNWRITABLE, STORE_IO, STORE_CLOSED). A refused record
   * returns undefined and its callback runs on the next tick.
   */
  append(payload: Buffer, callback: AppendCallback): number | undefined {
    return this.appendWith(payload.length, (target, offset) => payload.copy(target, offset), callback);
  }

  /** `append` for a payload of `bytes` bytes that `write` puts in place: no buffer of its own for every record. */
  appendWith(bytes: number, write: PayloadWriter, callback: AppendCallback): number | undefined {
    return this.appendItem(bytes, writeWithOwnWriter, write, (_write, error) => callback(error));
  }

  /**
   * `appendWith` for many records alike: `write` puts `item`'s payload in place and `callback` gets `item` back, so
   * that a caller needs no closure per record.
   */
  appendItem<T>(bytes: number, write: ItemWriter<T>, item: T, callback: ItemCallback<T>): number | undefined {
    const refusal = this.closed
      ? new AliyunIotError('STORE_CLOSED', { dir: this.dir })
      : this.live.count >= this.maxRecords
        ? new AliyunIotError('STORE_FULL', { size: this.maxRecords })
        : this.maxBytes > 0 && this.live.bytes + bytes > this.maxBytes
          ? new AliyunIotError('STORE_FULL_BYTES', { bytes: this.maxBytes })
          : undefined;
    if (refusal) {
      process.nextTick(callback, item, refusal);
      return undefined;
    }
    const seq = this.nextSeq++;
    this.live.add(seq, bytes);
    this.batch.add(seq, bytes, write, item, callback);
    if (!this.writing && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    return seq;
  }

  /** Removes a record; acknowledgements may come in any order. Unknown sequence numbers are ignored. */
  ack(seq: number): void {
    if (this.live.remove(seq)) this.scheduleCursor();
  }

  /** Writes what is pending and the cursor, then closes the files; appends after this fail with STORE_CLOSED. */
  close(callback: () => void = () => undefined): void {
    if (this.closed && this.fd < 0) {
      callback();
      return;
    }
    this.closeCallbacks.push(callback);
    if (this.closed) return;
    this.closed = true;
    this.finishClose();
  }

  /** The acknowledged prefix: everything up to the oldest record still held. */
  private cursor(): number {
    return (this.live.oldest ?? this.nextSeq) - 1;
  }

  private flush(): void {
    if (this.writing || this.batch.size === 0) {
      if (this.closed) this.finishClose();
      return;
    }
    const batch = this.batch;
    this.batch = new Batch();
    this.writing = true;
    let segment: Segment;
    try {
      segment = this.activeSegment(batch.seqs[0]);
    } catch (err) {
      this.finishBatch(batch, storeError(err, this.dir));
      return;
    }
    const data = batch.data();
    const fd = this.fd;
    const writeFrom = (written: number): void => {
      fs.write(fd, data, written, data.length - written, segment.size + written, (err, bytes) => {
        if (err) {
          this.failWrite(batch, segment, err);
        } else if (written + bytes < data.length) {
          writeFrom(written + bytes);
        } else {
          fs.fdatasync(fd, (syncError) => {
            if (syncError) {
              this.failWrite(batch, segment, syncError);
              return;
            }
            segment.size += data.length;
            segment.lastSeq = batch.seqs[batch.size - 1];
            this.finishBatch(batch);
          });
        }
      });
    };
    writeFrom(0);
  }

  /** The segment to write on: a new one when the current one is full. */
  private activeSegment(first: number): Segment {
    const current = this.segments[this.segments.length - 1];
    if (current.size < this.segmentBytes) return current;
    const segment = { base: first, file: path.join(this.dir, segmentName(first)), size: 0, lastSeq: first - 1 };
    const fd = fs.openSync(segment.file, 'w');
    fsyncDirectory(this.dir);
    fs.closeSync(this.fd);
    this.fd = fd;
    this.segments.push(segment);
    return segment;
  }

  private failWrite(batch: Batch, segment: Segment, err: NodeJS.ErrnoException): void {
    // What the failed write left behind would read as a torn tail; the next write starts at the same place anyway.
    fs.ftruncate(this.fd, segment.size, () => this.finishBatch(batch, storeError(err, this.dir)));
  }

  private finishBatch(batch: Batch, error?: AliyunIotError): void {
    this.writing = false;
    if (error) for (const seq of batch.seqs) this.live.remove(seq);
    for (let i = 0; i < batch.size; i++) batch.callbacks[i](batch.items[i], error);
    if (this.batch.size > 0) this.flush();
    else if (this.closed) this.finishClose();
  }

  private scheduleCursor(): void {
    if (this.cursorWriting || this.cursorTimer || this.closed) return;
    const wait = Math.max(0, this.lastCursorWrite + this.cursorIntervalMs - Date.now());
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      this.writeCursor(() => undefined);
    }, wait);
  }

  /** Saves the acknowledged prefix (write, fsync, rename), then deletes the segments wholly below it. */
  private writeCursor(done: () => void): void {
    const cursor = this.cursor();
    if (cursor <= this.savedCursor || this.cursorWriting) {
      done();
      return;
    }
    this.cursorWriting = true;
    const data = Buffer.alloc(CURSOR_BYTES);
    writeSeq(data, cursor, 0);
    data.writeUInt32BE(crc32(data.subarray(0, 8)), 8);
    const file = path.join(this.dir, CURSOR_FILE);
    const temporary = `${file}.tmp`;
    const finish = (err: Error | null): void => {
      this.cursorWriting = false;
      this.lastCursorWrite = Date.now();
      if (!err) {
        this.savedCursor = cursor;
        this.dropAcknowledgedSegments();
      }
      // A cursor that could not be saved costs replays after a restart, never records.
      if (!this.closed && this.cursor() > this.savedCursor) this.scheduleCursor();
      done();
    };
    fs.open(temporary, 'w', (openError, fd) => {
      if (openError) return finish(openError);
      fs.write(fd, data, 0, data.length, 0, (writeError) => {
        if (writeError) return fs.close(fd, () => finish(writeError));
        fs.fdatasync(fd, (syncError) =>
          fs.close(fd, () => {
            if (syncError) return finish(syncError);
            fs.rename(temporary, file, finish);
          }),
        );
      });
    });
  }

  private dropAcknowledgedSegments(): void {
    while (this.segments.length > 1 && this.segments[0].lastSeq <= this.savedCursor) {
      const segment = this.segments.shift() as Segment;
      fs.unlink(segment.file, () => undefined);
    }
  }

  private finishClose(): void {
    if (this.writing || this.batch.size > 0 || this.fd < 0) {
      if (!this.writing && this.batch.size > 0) this.flush();
      return;
    }
    clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    const wait = (): void => {
      if (this.cursorWriting) {
        setImmediate(wait);
        return;
      }
      this.writeCursor(() => {
        const fd = this.fd;
        this.fd = -1;
        fs.close(fd, () => {
          for (const callback of this.closeCallbacks.splice(0)) callback();
        });
      });
    };
    wait();
  }
}
