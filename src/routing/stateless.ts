/**
 * Placement of stateless requests (a path rule with `affinity: "none"`, such as Servoy's
 * REST API): no session, no affinity cookie, so no hashing either. Each request goes to
 * the backend taking new sessions with the fewest requests in flight (least outstanding
 * requests, as Envoy's LEAST_REQUEST and HAProxy's `balance leastconn` do), ties taken in
 * turn so that sequential calls (always zero in flight) spread as round robin does.
 *
 * Pure: the caller passes the in-flight counts and a turn number (a counter it increments
 * per request); nothing here keeps state. Weights are not applied: a stateless request is
 * short, and in-flight counts already steer work away from a slower server.
 */
import type { BackendView, PoolSnapshot } from '../pool/snapshot.js';
import type { Decision } from './types.js';

const NO_BACKEND: Decision = Object.freeze({ kind: 'unavailable', reason: 'no-backend' });

/**
 * pickStateless returns the candidate with the fewest requests in flight, skipping
 * `exclude`; among equals the (turn mod count)-th in candidate order. Undefined when no
 * candidate is left. Allocates nothing.
 */
export function pickStateless(
  candidates: readonly BackendView[],
  inFlight: (backendId: string) => number,
  turn: number,
  exclude?: ReadonlySet<string>,
): BackendView | undefined {
  let fewest = Infinity;
  let ties = 0;
  for (let i = 0; i < candidates.length; i++) {
    const id = candidates[i]!.id;
    if (exclude !== undefined && exclude.has(id)) continue;
    const n = inFlight(id);
    if (n < fewest) {
      fewest = n;
      ties = 1;
    } else if (n === fewest) ties++;
  }
  if (ties === 0) return undefined;
  let wanted = (turn >>> 0) % ties;
  for (let i = 0; i < candidates.length; i++) {
    const backend = candidates[i]!;
    if ((exclude !== undefined && exclude.has(backend.id)) || inFlight(backend.id) !== fewest) continue;
    if (wanted === 0) return backend;
    wanted--;
  }
  return undefined; // unreachable while inFlight answers the same twice
}

/**
 * routeStateless is the routing decision for a stateless request: a backend among those
 * that take new sessions (snapshot.acceptingNew), reason `stateless`, no affinity cookie.
 */
export function routeStateless(snapshot: PoolSnapshot, inFlight: (backendId: string) => number, turn: number, exclude?: ReadonlySet<string>): Decision {
  const backend = pickStateless(snapshot.acceptingNew, inFlight, turn, exclude);
  if (backend === undefined) return NO_BACKEND;
  return { kind: 'backend', backend, reason: 'stateless', clientId: undefined, setCookie: false };
}
