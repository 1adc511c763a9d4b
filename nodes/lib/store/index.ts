export * from './crc32';
export * from './durable-log';
