/**
 * Readiness: the answer of GET /healthz (admin port) and of listen.healthPath (traffic
 * port), one function so both ports, and every worker, say the same thing. An upstream
 * (keepalived, a cloud load balancer) acts on the status code: 200 while this balancer can
 * route (some backend serves sessions: up, draining, drained or in maintenance), 503 when
 * every backend is down or disabled. Shared-state trouble is reported in the body but never
 * makes it 503: the store is shared, so both balancers of a pair would fail over at once.
 */
import type { BackendState } from './snapshot.js';

/**
 * StateHealth is the health of the state store: the file store is always ok while running;
 * the Redis store (state.redis) reports `{kind: "redis", ok: false, reason}` while Redis is unreachable.
 */
export interface StateHealth {
  readonly kind: 'file' | 'redis';
  readonly ok: boolean;
  /** Why not ok, one sentence. */
  readonly reason?: string;
}

/** BackendCounts are the backends by state, with the total. */
export type BackendCounts = { total: number } & Record<BackendState, number>;

/** Readiness is the JSON body of a health answer; `ok` decides 200 or 503. */
export interface Readiness {
  readonly ok: boolean;
  /** Only when not ok: why no backend can serve, naming the states. */
  readonly reason?: string;
  readonly backends: BackendCounts;
  readonly state: StateHealth;
}

const STATES: readonly BackendState[] = ['up', 'draining', 'drained', 'maintenance', 'disabled', 'down'];
/** The states in which a backend serves (at least) the sessions it has: see BackendView.servesExisting. */
const SERVING: ReadonlySet<BackendState> = new Set(['up', 'draining', 'drained', 'maintenance']);

/** FILE_STATE_HEALTH is what the file store reports: it has no failure mode while running. */
export const FILE_STATE_HEALTH: StateHealth = Object.freeze({ kind: 'file', ok: true });

/** readiness judges a pool by its backends' states; see the file comment. */
export function readiness(states: readonly BackendState[], state: StateHealth): Readiness {
  const counts = Object.fromEntries([['total', states.length], ...STATES.map((s) => [s, 0])]) as BackendCounts;
  for (const s of states) counts[s]++;
  if (states.some((s) => SERVING.has(s))) return { ok: true, backends: counts, state };
  return { ok: false, reason: unavailableReason(counts), backends: counts, state };
}

/** unavailableReason says why nothing can serve: every backend down, every one disabled, or a mix. */
function unavailableReason(counts: BackendCounts): string {
  if (counts.total === 0) return 'there are no backends';
  const all = counts.total === 1 ? 'the only backend is' : `all ${counts.total} backends are`;
  if (counts.down === counts.total) return `${all} down`;
  if (counts.disabled === counts.total) return `${all} disabled`;
  return `no backend can serve: ${counts.down} down, ${counts.disabled} disabled`;
}
