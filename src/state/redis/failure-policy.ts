/**
 * What an instance does when Redis is unreachable (SPEC "Several balancers"), as pure
 * decisions the wiring applies:
 * - at start: Redis up -> use it; down with a local copy of the last shared state ->
 *   serve from the copy (and say so); down without one -> refuse to start, one clear
 *   sentence.
 * - a request for a partition key nobody assigned yet, while Redis is down -> 503 with
 *   Retry-After (a tenant is never placed on two servers); a known key routes as before.
 * - an admin change while Redis is down -> refused, with the reason.
 * - status and /healthz: the state health (never a 503 of /healthz: both instances of a
 *   pair share Redis and would fail over at once).
 */
import type { StateHealth } from '../../pool/readiness.js';
import type { CopyRead, SharedCopy } from './local-copy.js';
import type { ConnectionState } from './redis-connection.js';
import { SharedStateUnreachableError } from './redis-errors.js';

/** StartDecision is how an instance starts. */
export type StartDecision =
  | { readonly kind: 'redis' }
  | { readonly kind: 'local-copy'; readonly copy: SharedCopy; readonly warning: string }
  | { readonly kind: 'refuse'; readonly error: string };

/** startDecision chooses between Redis, the local copy and refusing to start; see the file comment. */
export function startDecision(redisUp: boolean, address: string, reason: string | undefined, copy: CopyRead, copyFile: string, now = Date.now()): StartDecision {
  if (redisUp) return { kind: 'redis' };
  const why = `Redis at ${address} is unreachable (${reason ?? 'no answer'})`;
  if (copy.kind === 'ok') {
    const age = Math.max(0, Math.round((now - copy.copy.savedAt) / 1000));
    return {
      kind: 'local-copy',
      copy: copy.copy,
      warning: `${why}; serving from the local copy of the shared state ${copyFile} (saved ${age} s ago) until it is back: new partition keys get 503 and admin changes are refused meanwhile`,
    };
  }
  const missing = copy.kind === 'missing' ? `there is no local copy of the shared state (${copyFile})` : `the local copy of the shared state ${copyFile} is damaged (${copy.reason})`;
  return { kind: 'refuse', error: `cannot start: ${why} and ${missing}; start Redis (or fix state.redis) and try again` };
}

/** NewPartitionAnswer is what a request for a never-assigned partition key gets. */
export type NewPartitionAnswer = { readonly kind: 'assign' } | { readonly kind: 'retry-later'; readonly status: 503; readonly retryAfterSeconds: number; readonly reason: string };

/** newPartitionAnswer: assign it while Redis is up, else 503 + Retry-After (never placed on two servers). */
export function newPartitionAnswer(state: ConnectionState, address: string, retryAfterSeconds = 5): NewPartitionAnswer {
  if (state.up) return { kind: 'assign' };
  return { kind: 'retry-later', status: 503, retryAfterSeconds, reason: `new partition key while Redis at ${address} is unreachable (${state.lastError ?? 'not connected'})` };
}

/** adminRefusal is the error an admin change gets while Redis is down, or undefined when it may go on. */
export function adminRefusal(state: ConnectionState, address: string): SharedStateUnreachableError | undefined {
  return state.up ? undefined : new SharedStateUnreachableError(address, state.lastError ?? 'not connected');
}

/** stateHealth is the `state` part of /healthz and status for a Redis store. */
export function stateHealth(state: ConnectionState, address: string, now = Date.now()): StateHealth {
  if (state.up) return { kind: 'redis', ok: true };
  const seconds = Math.max(0, Math.round((now - state.since) / 1000));
  return { kind: 'redis', ok: false, reason: `Redis at ${address} unreachable for ${seconds} s (${state.lastError ?? 'not connected'}); serving from the last known shared state` };
}
