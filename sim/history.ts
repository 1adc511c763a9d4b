// thing.event.property.history.post on the simulated platform (docs/protocol.md §9.2): the check of a post and the
// property values it brings, kept per device with their times.
import { Device, THING_POST_LIMITS, TimedValue, deviceKey } from '../nodes/lib/protocol';

/** Values kept per device; the oldest go first. */
export const HISTORY_PER_DEVICE = 10_000;

/** The platform's answer codes for a history post. */
export const HISTORY_CODES = {
  success: 200,
  badRequest: 460,
  /** A device the poster may not post for (not itself, nor a sub-device attached to it). */
  noTopology: 6401,
  tooManyProperties: 6106,
  /** A `time` that is no number of ms, or more than 24 h in the future. */
  badTime: 6326,
} as const;

export interface HistoryValue extends TimedValue {
  name: string;
}

export interface HistoryEntry {
  device: Device;
  values: HistoryValue[];
}

/** Reads a history post's params, or gives the code the platform refuses it with. */
export function readHistoryParams(
  params: unknown,
  mayPostFor: (device: Device) => boolean,
  now: number,
): { code: 200; entries: HistoryEntry[] } | { code: number } {
  if (!Array.isArray(params) || params.length === 0) return { code: HISTORY_CODES.badRequest };
  const entries: HistoryEntry[] = [];
  let count = 0;
  for (const block of params) {
    const { identity, properties } = (block ?? {}) as { identity?: unknown; properties?: unknown };
    const { productKey, deviceName } = (identity ?? {}) as { productKey?: unknown; deviceName?: unknown };
    if (typeof productKey !== 'string' || typeof deviceName !== 'string' || !Array.isArray(properties)) {
      return { code: HISTORY_CODES.badRequest };
    }
    const device = { productKey, deviceName };
    if (!mayPostFor(device)) return { code: HISTORY_CODES.noTopology };
    const values: HistoryValue[] = [];
    for (const map of properties) {
      if (map === null || typeof map !== 'object' || Array.isArray(map)) return { code: HISTORY_CODES.badRequest };
      for (const [name, entry] of Object.entries(map as Record<string, unknown>)) {
        const { value, time } = (entry ?? {}) as { value?: unknown; time?: unknown };
        const ms = typeof time === 'number' || typeof time === 'string' ? Number(time) : NaN;
        if (!Number.isFinite(ms) || ms <= 0 || ms > now + THING_POST_LIMITS.maxFutureMs) return { code: HISTORY_CODES.badTime };
        values.push({ name, value, time: ms });
      }
    }
    count += values.length;
    entries.push({ device, values });
  }
  if (count > THING_POST_LIMITS.properties) return { code: HISTORY_CODES.tooManyProperties };
  return { code: HISTORY_CODES.success, entries };
}

/** Values posted as history, per device, in the order of their times. */
export class PropertyHistory {
  private readonly byDevice = new Map<string, HistoryValue[]>();

  add(device: Device, values: HistoryValue[]): void {
    const key = deviceKey(device);
    const kept = this.byDevice.get(key) ?? [];
    kept.push(...values);
    kept.sort((a, b) => a.time - b.time);
    if (kept.length > HISTORY_PER_DEVICE) kept.splice(0, kept.length - HISTORY_PER_DEVICE);
    this.byDevice.set(key, kept);
  }

  of(device: Device): HistoryValue[] {
    return [...(this.byDevice.get(deviceKey(device)) ?? [])];
  }
}
