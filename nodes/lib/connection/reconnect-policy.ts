// When and how a connection comes back after it closed: one pure decision for both kinds of connection.
import { AliyunIotError, LogCode, LogMessage, StatusCode } from '../errors';
import { checkTimerDuration } from '../protocol/limits';
import type { ConnectionLogger, ConnectionMode, ConnectionState, ConnectionStatus } from './types';

/** Tunables of reconnecting and knock-off detection; settings (`aliyunIot.reconnect`) and tests shorten them. */
export interface ReconnectPolicy {
  /** First delay after a lost connection or a failed attempt. */
  networkBaseMs: number;
  networkMaxMs: number;
  /** First delay after a refused login (CONNACK 1-5, a refused SASL login, an untrusted certificate). */
  refusedBaseMs: number;
  refusedMaxMs: number;
  /** A connection closed by the peer sooner than this after CONNACK counts toward "knocked off". */
  shortSessionMs: number;
  /** How many short sessions in a row mean another client uses the same device. */
  kickedAfter: number;
  kickedBaseMs: number;
  kickedMaxMs: number;
  /** Grace before the UNSUBSCRIBE of a filter whose last owner was redeployed rather than removed. */
  unsubscribeGraceMs: number;
  connectTimeoutMs: number;
  /** Longest wait for a graceful end on close before the socket is destroyed. */
  closeTimeoutMs: number;
  /** How long after an uploaded token's PUBACK a $SYS/tokenInvalidNotice still counts as its refusal. */
  tokenConfirmMs: number;
  /**
   * The idle-time-out the cloud connection announces in its AMQP open (the platform takes 30,000-300,000 ms): the
   * platform sends a frame at least every half of it, and a connection that hears nothing for twice it is closed and
   * connected again. 0 announces none.
   */
  amqpIdleTimeoutMs: number;
}

export const DEFAULT_RECONNECT_POLICY: Readonly<ReconnectPolicy> = Object.freeze({
  networkBaseMs: 1000,
  networkMaxMs: 30_000,
  refusedBaseMs: 2000,
  refusedMaxMs: 300_000,
  shortSessionMs: 20_000,
  kickedAfter: 2,
  kickedBaseMs: 4000,
  kickedMaxMs: 60_000,
  unsubscribeGraceMs: 1000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 1500,
  tokenConfirmMs: 1000,
  amqpIdleTimeoutMs: 60_000,
});

const POLICY_KEYS = Object.keys(DEFAULT_RECONNECT_POLICY) as Array<keyof ReconnectPolicy>;

/**
 * The default policy with the entries of `overrides` (from the runtime's settings, or a test); other keys are ignored.
 * Throws RECONNECT_SETTING_INVALID for an entry that is not a number of 0 or more, DURATION_TOO_LONG for a duration
 * past setTimeout's limit.
 */
export function reconnectPolicy(overrides: unknown = {}): ReconnectPolicy {
  const policy: ReconnectPolicy = { ...DEFAULT_RECONNECT_POLICY };
  if (overrides === null || typeof overrides !== 'object') return policy;
  for (const key of POLICY_KEYS) {
    const value = (overrides as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const field = `aliyunIot.reconnect.${key}`;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new AliyunIotError('RECONNECT_SETTING_INVALID', { field, value: String(value) });
    }
    policy[key] = key === 'kickedAfter' ? value : checkTimerDuration(value, field);
  }
  return policy;
}

/** Exponential with ±20 % jitter, so that many clients do not come back in the same instant. */
export function backoffDelay(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  const delay = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.round(delay * (0.8 + random() * 0.4));
}

/** Node's codes for a server certificate that failed verification (untrusted, self-signed, expired, wrong name). */
export const TLS_CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME_MISMATCH/;

/** The CONNACK return codes of MQTT 3.1.1 that refuse a login. */
type ConnackRefusal = 1 | 2 | 3 | 4 | 5;

function isConnackRefusal(returnCode: number): returnCode is ConnackRefusal {
  return Number.isInteger(returnCode) && returnCode >= 1 && returnCode <= 5;
}

const REFUSAL_REASONS: Record<'iot' | 'mq', Record<ConnackRefusal, StatusCode>> = {
  iot: { 1: 'refused-protocol', 2: 'refused-client-id', 3: 'refused-unavailable', 4: 'refused-unknown-device', 5: 'refused-signature' },
  mq: { 1: 'refused-protocol', 2: 'refused-client-id', 3: 'refused-unavailable', 4: 'refused-username', 5: 'refused-not-authorized' },
};

const SERVICE_SUFFIX = { iot: 'IOT', mq: 'MQ' } as const;

/**
 * The log line of a refused login: `REFUSED_<return code>_<service>`, one entry per code and service in the catalog
 * (the assignment does not compile while one is missing); a code outside MQTT 3.1.1's gets REFUSED_OTHER.
 */
export function refusalLogCode(mode: 'iot' | 'mq', returnCode: number): LogCode {
  if (!isConnackRefusal(returnCode)) return 'REFUSED_OTHER';
  const code: LogCode = `REFUSED_${returnCode}_${SERVICE_SUFFIX[mode]}`;
  return code;
}

/** How many attempts of each kind failed in a row; a successful login starts them over. */
export interface RetryCounters {
  networkFailures: number;
  refusals: number;
  shortSessions: number;
}

export const NO_FAILURES: Readonly<RetryCounters> = Object.freeze({ networkFailures: 0, refusals: 0, shortSessions: 0 });

/** What is known when a connection closed on its own (not by close, disconnect or the last user leaving). */
export interface CloseFacts {
  mode: ConnectionMode;
  /** Who and where, for the log. */
  target: string;
  /** The CONNACK code of a refused MQTT login. */
  returnCode?: number;
  /** A login refused without a CONNACK code (the AMQP link's SASL). */
  refused?: boolean;
  /** Why the server's certificate was not accepted (Node's code and message). */
  tlsFailure?: string;
  /** The status until now. */
  current: ConnectionStatus;
  /** Milliseconds since the login was accepted; meaningful when `current` was connected. */
  livedMs: number;
  /** Whether repeated short sessions mean "knocked off by another login" (one login per device: MQTT only). */
  detectKick: boolean;
}

export interface CloseDecision {
  status: ConnectionStatus;
  delayMs: number;
  counters: RetryCounters;
  /** What to log; `once` lines are logged once per streak of the same problem. */
  log?: { level: 'info' | 'warn' | 'error'; message: LogMessage; once: boolean };
}

function keepsProblem(state: ConnectionState): boolean {
  return state === 'refused' || state === 'kicked';
}

/** Classifies a close: the status to show, how long to wait before the next attempt, and what to log. */
export function classifyClose(
  facts: CloseFacts,
  counters: RetryCounters,
  policy: ReconnectPolicy,
  random: () => number = Math.random,
): CloseDecision {
  const next = { ...counters };
  const { target, current } = facts;
  if (facts.returnCode !== undefined && facts.mode !== 'cloud') {
    const returnCode = facts.returnCode;
    return {
      status: { state: 'refused', reason: isConnackRefusal(returnCode) ? REFUSAL_REASONS[facts.mode][returnCode] : 'refused', returnCode },
      delayMs: backoffDelay(next.refusals++, policy.refusedBaseMs, policy.refusedMaxMs, random),
      counters: next,
      log: { level: 'error', message: new LogMessage(refusalLogCode(facts.mode, returnCode), { target, code: returnCode }), once: true },
    };
  }
  if (facts.tlsFailure !== undefined) {
    // Retrying at once cannot help: the certificate stays the same until someone changes the config or the server.
    return {
      status: { state: 'refused', reason: 'tls-error' },
      delayMs: backoffDelay(next.refusals++, policy.refusedBaseMs, policy.refusedMaxMs, random),
      counters: next,
      log: { level: 'error', message: new LogMessage('TLS_CERTIFICATE', { target, reason: facts.tlsFailure }), once: true },
    };
  }
  if (facts.refused) {
    return {
      status: { state: 'refused', reason: 'refused-not-authorized' },
      delayMs: backoffDelay(next.refusals++, policy.refusedBaseMs, policy.refusedMaxMs, random),
      counters: next,
      log: { level: 'error', message: new LogMessage('AMQP_REFUSED', { target }), once: true },
    };
  }
  if (current.state === 'connected') {
    next.shortSessions = facts.detectKick && facts.livedMs < policy.shortSessionMs ? next.shortSessions + 1 : 0;
    if (facts.detectKick && next.shortSessions >= policy.kickedAfter) {
      return {
        status: { state: 'kicked', reason: 'kicked' },
        delayMs: backoffDelay(next.shortSessions - policy.kickedAfter, policy.kickedBaseMs, policy.kickedMaxMs, random),
        counters: next,
        log: {
          level: 'warn',
          message: new LogMessage(facts.mode === 'mq' ? 'KICKED_MQ' : 'KICKED_IOT', { target, count: next.shortSessions }),
          once: true,
        },
      };
    }
    return {
      status: { state: 'disconnected', reason: 'disconnected' },
      delayMs: backoffDelay(0, policy.networkBaseMs, policy.networkMaxMs, random),
      counters: next,
      log: { level: 'info', message: new LogMessage('CONNECTION_LOST', { target }), once: false },
    };
  }
  // A failed attempt: a refusal or a knock-off stays on show until a login succeeds.
  return {
    status: keepsProblem(current.state) ? current : { state: 'disconnected', reason: 'disconnected' },
    delayMs: backoffDelay(next.networkFailures++, policy.networkBaseMs, policy.networkMaxMs, random),
    counters: next,
  };
}

/** A connection's log for problems that repeat at every retry: each line once per streak, until `reset()`. */
export class ProblemLog {
  private last = '';

  constructor(private readonly log: ConnectionLogger) {}

  reset(): void {
    this.last = '';
  }

  write(level: 'debug' | 'info' | 'warn' | 'error', message: LogMessage, once = true): void {
    if (once) {
      const text = message.text;
      if (text === this.last) return;
      this.last = text;
    }
    this.log[level](message);
  }

  /** Logs what a close decision says. */
  writeDecision(decision: CloseDecision): void {
    if (decision.log) this.write(decision.log.level, decision.log.message, decision.log.once);
  }
}
