export * from './crc32';
export * from './durable-log';
export * from './live-records';
export * from './secret-store';
