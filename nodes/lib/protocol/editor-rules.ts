// The rules the editor checks, as plain JSON: the build writes this object into each node's editor file, so that the
// editor refuses exactly what the runtime refuses without a copy of any pattern or number.
import { AMQP_PORTS, API_PORTS } from './endpoints';
import { IDENTIFIER_PATTERNS, IdentifierKind } from './identifiers';
import { DEFAULTS, RANGES, SERVICE_LIMITS } from './limits';
import { MQ_CLIENT_ID_SEPARATOR } from './mq-login';

export interface EditorRules {
  /** The source of each identifier pattern, for `new RegExp(source)` (none of them has flags). */
  patterns: Record<IdentifierKind, string>;
  ranges: typeof RANGES;
  limits: typeof SERVICE_LIMITS;
  defaults: typeof DEFAULTS;
  /** The URL schemes an endpoint override may have. */
  endpointSchemes: { amqp: string[]; api: string[] };
  mqClientIdSeparator: string;
}

export function editorRules(): EditorRules {
  const patterns = {} as Record<IdentifierKind, string>;
  for (const [kind, pattern] of Object.entries(IDENTIFIER_PATTERNS) as [IdentifierKind, RegExp][]) {
    if (pattern.flags !== '') throw new Error(`identifier pattern ${kind} has flags, which the editor rules do not carry`);
    patterns[kind] = pattern.source;
  }
  return {
    patterns,
    ranges: RANGES,
    limits: SERVICE_LIMITS,
    defaults: DEFAULTS,
    endpointSchemes: { amqp: Object.keys(AMQP_PORTS), api: Object.keys(API_PORTS) },
    mqClientIdSeparator: MQ_CLIENT_ID_SEPARATOR,
  };
}
