// Forwarding rules, playing the rule engine: a device message on a `from` filter is republished (by the cloud) on
// `to`, with fields selected and a condition applied, so device-to-device (M2M) flows can be tried locally.
import { MAX_JSON_DEPTH, nestsDeeperThan, parseAlink } from '../nodes/lib/protocol';
import { Condition, compileCondition, field } from './condition';
import { SimRule, validateRule } from './config';

interface CompiledRule {
  rule: SimRule;
  condition?: Condition;
  select?: Array<{ name: string; read: (payload: unknown) => unknown }>;
}

export interface ForwardedMessage {
  rule: SimRule;
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1;
}

/** The levels `+` and `#` matched, in order; undefined when the topic does not match the filter. */
export function wildcardCaptures(filter: string, topic: string): string[] | undefined {
  const pattern = filter.split('/');
  const levels = topic.split('/');
  const captures: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '#') {
      captures.push(levels.slice(i).join('/'));
      return captures;
    }
    if (i >= levels.length) return undefined;
    if (pattern[i] === '+') captures.push(levels[i]);
    else if (pattern[i] !== levels[i]) return undefined;
  }
  return pattern.length === levels.length ? captures : undefined;
}

function compile(rule: SimRule): CompiledRule {
  return {
    rule,
    condition: rule.where ? compileCondition(rule.where) : undefined,
    select: rule.select?.map((entry) => {
      const [path, alias] = entry.split(/\s+as\s+/i).map((part) => part.trim());
      return { name: alias || (path.split('.').at(-1) as string), read: field(path) };
    }),
  };
}

export class RuleEngine {
  private compiled: CompiledRule[] = [];

  constructor(rules: SimRule[] = []) {
    this.replace(rules);
  }

  list(): SimRule[] {
    return this.compiled.map((entry) => entry.rule);
  }

  /** Whether some rule takes messages on `topic`. */
  matches(topic: string): boolean {
    return this.compiled.some(({ rule }) => wildcardCaptures(rule.from, topic) !== undefined);
  }

  /** Replaces every rule; throws (changing nothing) when one is malformed. */
  replace(rules: unknown): void {
    if (!Array.isArray(rules)) throw new Error('rules must be an array');
    this.compiled = rules.map((rule, i) => compile(validateRule(rule, `rules[${i}]`)));
  }

  apply(source: { productKey: string; deviceName: string }, topic: string, payload: Buffer, qos: 0 | 1): ForwardedMessage[] {
    const forwarded: ForwardedMessage[] = [];
    let json: Record<string, unknown> | undefined;
    let parsed = false;
    for (const { rule, condition, select } of this.compiled) {
      const captures = wildcardCaptures(rule.from, topic);
      if (!captures) continue;
      if (condition || select) {
        if (!parsed) {
          json = parseAlink(payload);
          parsed = true;
        }
        if (!json || (condition && !condition(json))) continue;
      }
      const target = rule.to.replace(/\$\{([A-Za-z0-9]+)\}/g, (whole, name: string) => {
        if (name === 'productKey') return source.productKey;
        if (name === 'deviceName') return source.deviceName;
        return /^[0-9]+$/.test(name) ? (captures[Number(name) - 1] ?? whole) : whole;
      });
      let body: Buffer | string = payload;
      if (select && json) {
        const selected = Object.fromEntries(select.map(({ name, read }) => [name, read(json)]));
        // The rule engine drops a message whose selection it cannot write as JSON (too deep).
        if (nestsDeeperThan(selected, MAX_JSON_DEPTH)) continue;
        body = JSON.stringify(selected);
      }
      forwarded.push({ rule, topic: target, payload: body, qos: rule.qos ?? qos });
    }
    return forwarded;
  }
}
