// The broker's hooks and event handlers: who may connect, subscribe and publish, and what the simulator makes of it.
import type { Aedes, AedesOptions, AuthenticateError, Client } from 'aedes';
import { TOKEN_TOPICS } from '../nodes/lib/protocol';
import type { Gateways } from './gateway';
import type { SimulatedPlatform } from './platform';
import type { Registry, Session } from './registry';
import type { Sessions } from './sessions';
import type { TokenNotices } from './token-notices';

/** Events of logins and of the broker's verdicts, as the Simulator emits them. */
export interface BrokerEvents {
  login: [client: Client, session: Session];
  refused: [info: { clientId: string; username?: string; returnCode: number; reason: string }];
  kicked: [info: { clientId: string; by: string }];
  'publish-denied': [info: { clientId: string; topic: string }];
  'subscribe-denied': [info: { clientId: string; topic: string }];
  subscribe: [info: { clientId: string; topics: string[] }];
  unsubscribe: [info: { clientId: string; topics: string[] }];
}

export type EmitBrokerEvent = <E extends keyof BrokerEvents>(event: E, ...args: BrokerEvents[E]) => void;

export interface HookContext {
  sessions: Sessions;
  registry: Registry;
  platform: SimulatedPlatform;
  tokenNotices: TokenNotices;
  gateways: Gateways;
  log: (line: string) => void;
  emit: EmitBrokerEvent;
  /** Whether every allowed device publish must reach the platform (for the AMQP subscription or `message` listeners). */
  platformWantsEveryPublish: () => boolean;
}

type Hook<Name extends keyof AedesOptions> = NonNullable<AedesOptions[Name]>;

/** Publishes a device may not make are renamed to this topic, which no subscription can match: dropped. */
const DROPPED_TOPIC = '$SIM/dropped';

/**
 * A hook that never throws: aedes calls hooks without catching, so a throw would end the process. A hook that throws
 * before it answered is logged and answered with `refusal` (what the platform does with a message it cannot read).
 */
function guarded<Args extends unknown[], Callback extends (...answer: never[]) => void>(
  name: string,
  log: (line: string) => void,
  hook: (...args: [...Args, Callback]) => void,
  refusal: (callback: Callback, ...args: Args) => void,
): (...args: [...Args, Callback]) => void {
  return (...args) => {
    const callback = args.pop() as Callback;
    const hookArgs = args as unknown as Args;
    let answered = false;
    const answer = ((...result: never[]) => {
      answered = true;
      callback(...result);
    }) as Callback;
    try {
      hook(...hookArgs, answer);
    } catch (err) {
      log(`${name} failed: ${(err as Error)?.stack ?? String(err)}`);
      if (!answered) refusal(callback, ...hookArgs);
    }
  };
}

export function preConnect({ sessions }: Pick<HookContext, 'sessions'>): Hook<'preConnect'> {
  return function preConnect(client, packet, callback) {
    // Neither service supports will messages under MQTT 3.1.1.
    delete packet.will;
    const key = packet.clean ? undefined : sessions.keyPersistentSession(client, packet.clientId, packet.username);
    if (key) packet.clientId = key;
    callback(null, true);
  };
}

export function authenticate({
  sessions,
  registry,
  log,
  emit,
}: Pick<HookContext, 'sessions' | 'registry' | 'log' | 'emit'>): Hook<'authenticate'> {
  return function authenticate(client, username, password, callback) {
    const clientId = sessions.clientIdOf(client);
    const result = registry.login(clientId, username, password?.toString('utf8'));
    if (!result.ok) {
      log(`CONNACK ${result.returnCode} (${result.reason}) for ${clientId}`);
      emit('refused', { clientId, username, returnCode: result.returnCode, reason: result.reason });
      callback(Object.assign(new Error(`login refused: ${result.reason}`), { returnCode: result.returnCode }) as AuthenticateError, false);
      return;
    }
    sessions.loggedIn(client, result.session, (previous, device) => {
      log(`${device}: a new login (${clientId}) knocks off ${sessions.clientIdOf(previous)}`);
      emit('kicked', { clientId: sessions.clientIdOf(previous), by: clientId });
    });
    callback(null, true);
  };
}

export function authorizeSubscribe({
  sessions,
  gateways,
  log,
  emit,
}: Pick<HookContext, 'sessions' | 'gateways' | 'log' | 'emit'>): Hook<'authorizeSubscribe'> {
  return function authorizeSubscribe(client, subscription, callback) {
    const own = sessions.sessionOf(client);
    // A gateway subscribes its sub-devices' topics with their permissions, while they are online through it.
    const session = own?.kind === 'iot' ? gateways.actingAs(own, subscription.topic) : own;
    const p2p = session?.kind === 'mq' && session.p2pTopics.includes(subscription.topic);
    if (!session || (!p2p && !session.permissions.canSubscribe(subscription.topic))) {
      log(`SUBACK 0x80 ${sessions.clientIdOf(client)}: ${subscription.topic}`);
      emit('subscribe-denied', { clientId: sessions.clientIdOf(client), topic: subscription.topic });
      callback(null, null);
      return;
    }
    // Only QoS 0 and 1 exist on these services.
    if (subscription.qos > 1) subscription.qos = 1;
    callback(null, subscription);
  };
}

export function authorizePublish(context: HookContext): Hook<'authorizePublish'> {
  const { sessions, platform, tokenNotices, gateways, log, emit } = context;
  return function authorizePublish(client, packet, callback) {
    if (packet.qos > 1) packet.qos = 1;
    packet.retain = false;
    const own = client ? sessions.sessionOf(client) : undefined;
    const payloadOf = (): Buffer => (typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload);
    // A gateway publishes for its sub-devices as them (docs/protocol.md §8.4).
    const session = own?.kind === 'iot' ? gateways.actingAs(own, packet.topic) : own;
    if (client && own?.kind === 'mq' && packet.topic === TOKEN_TOPICS.upload) {
      tokenNotices.uploaded(client, own, packet.payload);
      packet.topic = DROPPED_TOPIC;
    } else if (client && own?.kind === 'iot' && gateways.isRequest(own, packet.topic)) {
      gateways.onRequest(client, own, packet.topic, payloadOf());
      packet.topic = DROPPED_TOPIC;
    } else if (own?.kind === 'iot' && session === null) {
      gateways.noSession(own, packet.topic, payloadOf());
      packet.topic = DROPPED_TOPIC;
    } else if (client && (!session || !session.permissions.canPublish(packet.topic))) {
      log(`No authorization: ${sessions.clientIdOf(client)} may not publish to ${packet.topic}`);
      emit('publish-denied', { clientId: sessions.clientIdOf(client), topic: packet.topic });
      packet.topic = DROPPED_TOPIC;
    } else if (session?.kind === 'iot' && (context.platformWantsEveryPublish() || platform.concerns(packet.topic))) {
      // Thing-model messages up to the platform are the platform's: answered there, seen by no other client.
      if (platform.onDevicePublish(session, packet.topic, payloadOf(), packet.qos as 0 | 1)) packet.topic = DROPPED_TOPIC;
    }
    callback(null);
  };
}

/** CONNACK 3, server unavailable: a login the simulator failed to judge. */
const SERVER_UNAVAILABLE = 3;

/** The hooks of the broker's options, each guarded: a throw refuses the login or subscription, or drops the publish. */
export function brokerHooks(
  context: HookContext,
): Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizeSubscribe' | 'authorizePublish'> {
  const { log } = context;
  return {
    preConnect: guarded('preConnect', log, preConnect(context), (callback) => callback(new Error('login failed'), false)),
    authenticate: guarded('authenticate', log, authenticate(context), (callback) =>
      callback(Object.assign(new Error('login failed'), { returnCode: SERVER_UNAVAILABLE }) as AuthenticateError, false),
    ),
    authorizeSubscribe: guarded('authorizeSubscribe', log, authorizeSubscribe(context), (callback) => callback(null, null)),
    authorizePublish: guarded('authorizePublish', log, authorizePublish(context), (callback, _client, packet) => {
      packet.topic = DROPPED_TOPIC;
      callback(null);
    }),
  };
}

export function onClientReady({
  sessions,
  tokenNotices,
  log,
  emit,
}: Pick<HookContext, 'sessions' | 'tokenNotices' | 'log' | 'emit'>): (client: Client) => void {
  return function clientReady(client) {
    const session = sessions.ready(client);
    if (!session) return;
    if (session.kind === 'mq') {
      client.subscribe(
        session.p2pTopics.map((topic) => ({ topic, qos: 1 as const })),
        () => undefined,
      );
      if (session.authMode === 'token') tokenNotices.schedule(client, session);
    }
    log(`login ${sessions.clientIdOf(client)}`);
    emit('login', client, session);
  };
}

export function onClientDisconnect({
  sessions,
  tokenNotices,
  gateways,
}: Pick<HookContext, 'sessions' | 'tokenNotices' | 'gateways'>): (client: Client) => void {
  return function clientDisconnect(client) {
    tokenNotices.disconnected(client);
    const session = sessions.sessionOf(client);
    if (session?.kind === 'iot') gateways.gatewayGone(session, client);
    sessions.disconnected(client);
  };
}

/** The broker's events the simulator follows. */
export function followBrokerEvents(broker: Aedes, context: HookContext): void {
  const { sessions, emit } = context;
  broker.on('clientReady', onClientReady(context));
  broker.on('subscribe', function subscribe(subscriptions, client) {
    const granted = subscriptions.filter((sub) => (sub.qos as number) !== 128).map((sub) => sub.topic);
    emit('subscribe', { clientId: sessions.clientIdOf(client), topics: granted });
  });
  broker.on('unsubscribe', function unsubscribe(topics, client) {
    emit('unsubscribe', { clientId: sessions.clientIdOf(client), topics });
  });
  broker.on('clientDisconnect', onClientDisconnect(context));
}
