/**
 * An admin change is applied only while the state store can take it: a shared store that
 * cannot be reached (SPEC: Redis down) refuses admin changes with a clear error rather
 * than letting one instance drift from the others. The file store is always writable, so
 * for one balancer nothing changes (a failed file write is reported after the fact, as
 * before: the change is live, not persisted).
 */
import { AdminError } from '../admin/control.js';
import type { StateStore } from '../state/state-store.js';

/** requireWritable throws STATE_UNAVAILABLE when the store reports it cannot take changes. */
export function requireWritable(store: Pick<StateStore, 'health'>): void {
  const health = store.health();
  if (health.ok) return;
  throw new AdminError('STATE_UNAVAILABLE', `the shared state cannot take changes now (${health.reason ?? `${health.kind} unavailable`}); nothing was changed, try again when it is back`);
}
