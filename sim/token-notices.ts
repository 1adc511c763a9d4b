// ApsaraMQ's token mode: `$SYS/tokenExpireNotice` ahead of expiry, `$SYS/tokenInvalidNotice` (and the connection
// closed) once no token holds, tokens uploaded on `$SYS/uploadToken`, and tokens revoked by the admin API.
import type { Client } from 'aedes';
import { TOKEN_TOPICS } from '../nodes/lib/protocol';
import { MqSession, Registry, tokensExpireAt } from './registry';
import type { Sessions } from './sessions';

/** setTimeout's longest delay; expiries further away are not scheduled. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How long before a token expires its holders get the expiry notice, unless the options say otherwise. */
export const DEFAULT_TOKEN_NOTICE_MS = 300_000;

function notify(client: Client, topic: string, body: Record<string, unknown>): void {
  client.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, () => undefined);
}

export class TokenNotices {
  /** Connected token-mode clients and the timers of their next token notice. */
  private readonly timers = new Map<Client, NodeJS.Timeout | undefined>();

  constructor(
    private readonly registry: Registry,
    private readonly sessions: Sessions,
    private readonly noticeMs: number,
    private readonly log: (line: string) => void,
  ) {}

  /** The next notice for a token-mode client: expiry ahead, or its tokens invalid now (and the connection closed). */
  schedule(client: Client, session: MqSession): void {
    clearTimeout(this.timers.get(client));
    this.timers.set(client, undefined);
    if (!this.registry.tokensValid(session)) {
      this.log(`${session.clientId}: token expired or revoked, disconnecting`);
      notify(client, TOKEN_TOPICS.invalidNotice, { clientId: session.clientId, reason: 'token-expired' });
      setTimeout(() => client.close(), 100);
      return;
    }
    const expireAt = tokensExpireAt(session) as number;
    const noticeAt = expireAt - this.noticeMs;
    const now = Date.now();
    if (noticeAt <= now) {
      notify(client, TOKEN_TOPICS.expireNotice, { clientId: session.clientId, expireTime: expireAt });
    }
    const next = noticeAt > now ? noticeAt : expireAt;
    if (next - now > MAX_TIMER_MS) return;
    this.timers.set(
      client,
      setTimeout(() => this.schedule(client, session), Math.max(0, next - now)),
    );
  }

  /** A client published to `$SYS/uploadToken`: a new token for its session, or an invalid notice saying why not. */
  uploaded(client: Client, session: MqSession, payload: Buffer | string): void {
    let request: { token?: unknown; type?: unknown } = {};
    try {
      const parsed: unknown = JSON.parse(payload.toString());
      // `null`, a number or an array is no request either
      if (parsed !== null && typeof parsed === 'object') request = parsed as typeof request;
    } catch {
      // an unreadable upload is refused below like any bad request
    }
    const refusal = this.registry.uploadToken(session, request.token, request.type ?? 'RW');
    if (refusal) {
      this.log(`${session.clientId}: uploaded token refused (${refusal})`);
      notify(client, TOKEN_TOPICS.invalidNotice, { clientId: session.clientId, reason: refusal });
      return;
    }
    this.log(`${session.clientId}: token uploaded`);
    this.schedule(client, session);
  }

  /** Revokes a token and tells the connected clients that hold it; returns whether the token existed. */
  revoke(token: string): boolean {
    if (!this.registry.revokeToken(token)) return false;
    for (const client of this.timers.keys()) {
      const session = this.sessions.sessionOf(client);
      if (session?.kind === 'mq' && session.tokens.some((held) => held.token === token)) this.schedule(client, session);
    }
    return true;
  }

  disconnected(client: Client): void {
    clearTimeout(this.timers.get(client));
    this.timers.delete(client);
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
