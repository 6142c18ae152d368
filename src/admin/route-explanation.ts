/**
 * Route explanations for `servoy-lb route` / GET /api/route: the router's own trace of one
 * request, made by the same route() call that routes real traffic, over a routing context
 * built from the control plane's view (pool-wide session totals, the partition directory,
 * the cookie keys). An explanation is therefore the decision itself, never a copy of its
 * logic. Session ids learned from Set-Cookie live in the traffic processes and are not
 * consulted here.
 */
import type { PoolSnapshot } from '../pool/snapshot.js';
import { AffinityCookieCodec } from '../routing/affinity-cookie.js';
import { normalizePartitionKey } from '../routing/partition-key.js';
import { route } from '../routing/router.js';
import type { PartitionLookup, RouteTrace, RoutingContext } from '../routing/types.js';
import { AdminError, type RouteExplanation, type RouteQuery } from './control.js';

/** ExplainView is what an explanation reads of the running balancer. */
export interface ExplainView {
  readonly snapshot: PoolSnapshot;
  /** Active sessions on a backend, pool-wide (summed over workers). */
  activeSessions(backendId: string): number;
  readonly balanceFactor: number;
  /** The affinity cookie keys (sign with the first, accept all). */
  readonly secrets: readonly string[];
  /** Partition mode only. */
  readonly partitions?: { lookup(key: string): PartitionLookup | undefined; count(backendId: string): number } | undefined;
}

/**
 * explainRoute traces where a request from `query.client` (with partition key, affinity
 * cookie and servlet session id as given) would go now. In session mode a key alone stands
 * for the client address (what older CLIs send).
 */
export function explainRoute(query: RouteQuery, view: ExplainView): RouteExplanation {
  const partitions = view.partitions;
  let partitionKey: string | undefined;
  if (partitions !== undefined && query.key !== undefined) {
    partitionKey = normalizePartitionKey(query.key);
    if (partitionKey === undefined) throw new AdminError('INVALID_BODY', 'that is not a valid partition key (1-256 characters, no control characters)');
  }
  const clientAddress = query.client ?? (partitions !== undefined ? '' : (query.key ?? ''));
  const codec = new AffinityCookieCodec(view.secrets);
  const ctx: RoutingContext = {
    verifyCookie: (raw) => codec.verify(raw),
    learnedBackend: () => undefined,
    activeSessions: (id) => view.activeSessions(id),
    balanceFactor: view.balanceFactor,
    ...(partitions === undefined ? {} : { partitionOf: (key: string) => partitions.lookup(key), partitionCount: (id: string) => partitions.count(id) }),
  };
  const trace: RouteTrace = { steps: [] };
  const decision = route({ clientAddress, affinityCookie: query.cookie, sessionId: query.session, partitionKey }, view.snapshot, ctx, undefined, trace);
  const deciding = trace.steps[trace.steps.length - 1];
  return {
    key: partitionKey ?? query.key ?? null,
    client: clientAddress,
    backend: decision.kind === 'backend' ? decision.backend.id : null,
    rule: decision.reason,
    reason: deciding?.detail ?? '',
    steps: trace.steps,
    candidates: (trace.candidates ?? []).map((c) => ({ id: c.id, state: c.state, sessions: c.load, cap: c.cap, fits: c.fits, score: c.score, ...(c.skipped === undefined ? {} : { skipped: c.skipped }) })),
  };
}
