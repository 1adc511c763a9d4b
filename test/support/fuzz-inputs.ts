// Hostile inputs for the fuzz suite: fast-check arbitraries of wrong types, huge and deeply nested values,
// prototype-less objects, Symbols, Buffers and garbage, and the bookkeeping of what became of each input.
import fc from 'fast-check';
import { PK } from './registry';

/** The seed of every fuzz run; FUZZ_SEED=<n> replays a failure. */
export const FUZZ_SEED = process.env.FUZZ_SEED === undefined ? 20240616 : Number(process.env.FUZZ_SEED);

/** How often each input kind is generated: about 1 in WEIGHT_RARE inputs is deep or huge. */
const WEIGHT_RARE = 1;
const WEIGHT_COMMON = 6;

/** `depth` levels of `{ key: ... }` around `leaf`, built without recursion. */
export function nested(depth: number, key = 'a', leaf: unknown = 1): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = 0; i < depth; i++) value = { [key]: value };
  return value as Record<string, unknown>;
}

/** The JSON text of `depth` levels of `{"key": ...}`, without building the object. */
export function nestedJson(depth: number, key = 'a', leaf = '1'): string {
  return `${`{"${key}":`.repeat(depth)}${leaf}${'}'.repeat(depth)}`;
}

function prototypeLess(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

/** Objects that break String(), Number() and template literals. */
const unconvertible = fc
  .constantFrom<() => unknown>(
    prototypeLess,
    () => ({ toString: 1, valueOf: 1 }),
    () => ({ toString: () => ({}), valueOf: () => ({}) }),
    () => ({
      [Symbol.toPrimitive]: () => {
        throw new Error('no primitive');
      },
    }),
  )
  .map((make) => make());

const deep = fc.integer({ min: 3000, max: 12000 }).map((depth) => nested(depth));
const huge = fc.constantFrom(300 * 1024, 1024 * 1024).map((size) => 'x'.repeat(size));
const garbageBytes = fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes));

/** Any value a msg property might hold in a careless or hostile flow. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  {
    arbitrary: fc.anything({
      maxDepth: 3,
      withBigInt: true,
      withBoxedValues: true,
      withNullPrototype: true,
      withTypedArray: true,
      withSparseArray: true,
    }),
    weight: WEIGHT_COMMON,
  },
  { arbitrary: fc.string({ maxLength: 40 }), weight: WEIGHT_COMMON },
  { arbitrary: fc.oneof(fc.double(), fc.integer(), fc.constantFrom(NaN, Infinity, -1, 2, 1e21)), weight: WEIGHT_COMMON },
  { arbitrary: fc.string().map((text) => Symbol(text)), weight: WEIGHT_COMMON },
  { arbitrary: unconvertible, weight: WEIGHT_COMMON },
  { arbitrary: garbageBytes, weight: WEIGHT_COMMON },
  { arbitrary: fc.constant(undefined), weight: WEIGHT_COMMON },
  { arbitrary: deep, weight: WEIGHT_RARE },
  { arbitrary: huge, weight: WEIGHT_RARE },
);

const topicLevel = fc.oneof(
  fc.constantFrom('+', '#', '', '${deviceName}', '${productKey}', '${groupId}', 'user', 'thing'),
  fc.string({ maxLength: 8 }),
);
/** Topics that look like the services' topics, often wrong. */
export const plausibleTopic: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    `/${PK}/dev01/user/echo`,
    '/${productKey}/${deviceName}/user/update',
    'parent/fuzz',
    `/sys/${PK}/dev01/thing/event/property/post`,
  ),
  fc.array(topicLevel, { minLength: 1, maxLength: 6 }).map((levels) => levels.join('/')),
  fc.array(topicLevel, { minLength: 1, maxLength: 6 }).map((levels) => `/${levels.join('/')}`),
);

/** A field of a generated msg: plausible values of its kind, or anything hostile. */
function field<T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: plausible, weight: 2 }, { arbitrary: hostileValue, weight: 1 });
}

/**
 * The msg fields the package's nodes read. `disconnect` is left out of the actions: it is a sequence the connection
 * layer's own tests cover, and it leaves later publishes of the fuzz run waiting for a connect.
 */
const MSG_FIELDS = {
  topic: field(fc.oneof(plausibleTopic, fc.array(plausibleTopic, { maxLength: 3 }), fc.constant(true))),
  payload: hostileValue,
  action: field(fc.constantFrom('connect', 'subscribe', 'unsubscribe', 'getSubscriptions', 'uploadToken', 'reboot')),
  qos: field(fc.constantFrom(0, 1, 2, '1', -1)),
  retain: field(fc.boolean()),
  alink: field(
    fc.record(
      {
        kind: field(fc.constantFrom('set', 'async', 'rrpc', 'ext-rrpc', 'custom-rrpc')),
        replyTopic: field(plausibleTopic),
        topic: field(plausibleTopic),
        id: field(fc.string({ maxLength: 6 })),
        messageId: field(fc.string({ maxLength: 6 })),
        autoReplied: field(fc.boolean()),
      },
      { requiredKeys: [] },
    ),
  ),
  code: field(fc.constantFrom(200, 400, '200', '', null)),
  message: hostileValue,
  event: field(fc.constantFrom('alarm', 'bad id', '')),
  productKey: field(fc.constantFrom(PK, 'nope')),
  deviceName: field(fc.constantFrom('dev01', 'dev04', 'nobody')),
  identifier: field(fc.constantFrom('getStatus', 'reboot', 'not valid')),
};

/**
 * A whole msg: some of the fields. The msg itself keeps Object's prototype, as every msg the runtime carries does
 * (Node-RED's own error handling calls msg.hasOwnProperty); its fields may be anything.
 */
export const hostileMsg: fc.Arbitrary<Record<string, unknown>> = fc.record(MSG_FIELDS, { requiredKeys: [], noNullPrototype: true });

/** Samples of an arbitrary for the fuzz seed; `offset` gives each use its own stream. */
export function samples<T>(arbitrary: fc.Arbitrary<T>, count: number, offset: number): T[] {
  return fc.sample(arbitrary, { seed: FUZZ_SEED + offset, numRuns: count });
}

/** A short description of a generated value for failure reports (the value itself may be deep or huge). */
export function describeValue(value: unknown): string {
  try {
    const text = fc.stringify(value);
    return text.length > 300 ? `${text.slice(0, 300)}... (${text.length} characters)` : text;
  } catch (err) {
    return `<not printable: ${(err as Error).message}>`;
  }
}

/** What became of the inputs to one node or endpoint. */
export interface Outcome {
  /** done() (an endpoint: answered). */
  done: number;
  /** done(err) (an endpoint: refused, or the connection closed). */
  doneWithError: number;
  /** Neither within the bound. */
  none: number;
  /** Uncaught exceptions, unhandled rejections and throws out of the runtime's receive. */
  crashes: number;
  /** done called more than once for one input. */
  twice: number;
  /** Answers of HTTP 500 to an input. */
  http500: number;
}

export function emptyOutcome(): Outcome {
  return { done: 0, doneWithError: 0, none: 0, crashes: 0, twice: 0, http500: 0 };
}

/** Everything thrown past the code under test while `run` runs: mocha's own handlers are set aside meanwhile. */
export async function catchingCrashes<T>(run: (crashes: unknown[]) => Promise<T>): Promise<{ result: T; crashes: unknown[] }> {
  const crashes: unknown[] = [];
  const savedExceptionListeners = process.listeners('uncaughtException');
  const savedRejectionListeners = process.listeners('unhandledRejection');
  const record = (reason: unknown): void => {
    crashes.push(reason);
  };
  process.removeAllListeners('uncaughtException').removeAllListeners('unhandledRejection');
  process.on('uncaughtException', record).on('unhandledRejection', record);
  try {
    const result = await run(crashes);
    return { result, crashes };
  } finally {
    process.removeAllListeners('uncaughtException').removeAllListeners('unhandledRejection');
    for (const listener of savedExceptionListeners) process.on('uncaughtException', listener);
    for (const listener of savedRejectionListeners) process.on('unhandledRejection', listener);
  }
}

/** The counts table of a fuzz run, printed with the test's output. */
export function formatOutcomes(title: string, outcomes: Record<string, Outcome>, columns: Array<keyof Outcome>): string {
  const header = `  ${'input'.padEnd(28)}${columns.map((column) => column.padStart(14)).join('')}`;
  const rows = Object.entries(outcomes).map(
    ([name, outcome]) => `  ${name.padEnd(28)}${columns.map((column) => String(outcome[column]).padStart(14)).join('')}`,
  );
  return [`${title} (seed ${FUZZ_SEED})`, header, ...rows].join('\n');
}
