// The short reconnect policy every test runtime uses (`RED.settings.aliyunIot.reconnect`), so that tests wait for
// back-offs of tens of milliseconds, not the production seconds; assertions on delays derive from these numbers.
import { ReconnectPolicy, backoffDelay } from '../../nodes/lib/connection';

export const TEST_RECONNECT_POLICY: Readonly<Partial<ReconnectPolicy>> = Object.freeze({
  networkBaseMs: 50,
  networkMaxMs: 400,
  refusedBaseMs: 100,
  refusedMaxMs: 1600,
  kickedBaseMs: 200,
  kickedMaxMs: 1600,
  // unsubscribeGraceMs stays at its default: a redeploy of modified nodes relies on the successor subscribing within it.
});

/** Settings under `aliyunIot` for a test runtime, in process or as a child. */
export const TEST_RUNTIME_SETTINGS = Object.freeze({ reconnect: TEST_RECONNECT_POLICY });

/** The shortest delay the back-off may choose for `attempt` (its jitter at the low end). */
export function shortestBackoff(attempt: number, baseMs: number, maxMs: number): number {
  return backoffDelay(attempt, baseMs, maxMs, () => 0);
}
