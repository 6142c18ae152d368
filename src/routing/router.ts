/**
 * The router: which backend serves a request (SPEC "Routing rules"). route() is a pure
 * function of the request facts, an immutable pool snapshot and a read-only context: no
 * I/O, no clock, no randomness. The proxy gathers the facts, asks, and acts on the answer
 * (connects, sets the cookie, retries a refused connection with `exclude`).
 *
 * New sessions are placed by weighted rendezvous hashing of the client address
 * (Thaler & Ravishankar 1998; weighted: Schindelhauer & Schomaker, SPAA 2005) with
 * bounded loads (Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing with Bounded
 * Loads", SODA 2018): a backend already at balanceFactor x its weighted share is passed
 * over for the next one in the key's ranking, as Envoy's hash_balance_factor does.
 */
import type { BackendView, PoolSnapshot } from '../pool/snapshot.js';
import { hash32, rendezvousHash, weightedScore } from './hash.js';
import { routeOfSessionId } from './request-cookies.js';
import type { CandidateStep, Decision, RequestFacts, RouteReason, RouteStep, RouteTrace, RoutingContext } from './types.js';

const NO_BACKEND: Decision = Object.freeze({ kind: 'unavailable', reason: 'no-backend' });
const PARTITION_DOWN: Decision = Object.freeze({ kind: 'unavailable', reason: 'partition-down' });
const POOL_FULL: Decision = Object.freeze({ kind: 'unavailable', reason: 'pool-full' });
const FAILOVER_HOLD: Decision = Object.freeze({ kind: 'unavailable', reason: 'failover-hold' });

/** LoadView is the part of the RoutingContext that bounded load reads. */
export type LoadView = Pick<RoutingContext, 'activeSessions' | 'balanceFactor'>;

/**
 * route decides where a request goes, by the first rule that applies:
 * 1. partition mode: a request with a partition key goes to the key's pin or durable
 *    assignment (while its server serves at all; else 503, never another server), or,
 *    for a key seen the first time, to a new assignment by weighted rendezvous hashing
 *    of the key with bounded load on partition counts. After a move with --drain, a
 *    live session on the old server keeps reaching it;
 * 2. existing session: valid affinity cookie, else Tomcat route suffix of the session
 *    id, else the learned session table. A backend that still serves existing sessions
 *    (up, draining, drained, maintenance) keeps them; a down one within failoverDelay
 *    holds them (503: the session waits for it); a down one past the delay, a disabled
 *    one, or one the proxy excluded after a refused connection means the session is
 *    placed anew;
 * 3. new session: weighted rendezvous hashing of the client address over the backends
 *    accepting new sessions, minus `exclude`, with bounded load and maxSessions.
 *
 * With `trace`, every rule tried is recorded in it (explanations); routing is the same.
 */
export function route(facts: RequestFacts, snapshot: PoolSnapshot, ctx: RoutingContext, exclude?: ReadonlySet<string>, trace?: RouteTrace): Decision {
  if (facts.partitionKey !== undefined) return routePartition(facts.partitionKey, facts, snapshot, ctx, exclude, trace);
  if (trace !== undefined && ctx.partitionOf !== undefined) step(trace, 'partition', 'skipped', undefined, 'the request carries no partition key: routed by session');
  return routeSession(facts, snapshot, ctx, exclude, trace);
}

/** What rule 2 makes of the backend a session names. */
type Named = 'use' | 'held' | 'lost';

function named(backend: BackendView, exclude: ReadonlySet<string> | undefined): Named {
  if (usable(backend, exclude)) return 'use';
  return backend.holdsSessions && (exclude === undefined || !exclude.has(backend.id)) ? 'held' : 'lost';
}

/** Rules 2 and 3. */
function routeSession(facts: RequestFacts, snapshot: PoolSnapshot, ctx: RoutingContext, exclude: ReadonlySet<string> | undefined, trace: RouteTrace | undefined): Decision {
  // Rule 2: existing session.
  let clientId: string | undefined;
  let lost = false; // the session's backend exists but cannot take it: place anew as 'replaced'
  if (facts.affinityCookie !== undefined) {
    const token = ctx.verifyCookie(facts.affinityCookie);
    const backend = token === undefined ? undefined : snapshot.byId.get(token.backendId);
    if (token !== undefined) clientId = token.clientId;
    if (backend !== undefined) {
      const verdict = named(backend, exclude);
      if (trace !== undefined) sessionStep(trace, 'affinity-cookie', verdict, backend, exclude, 'the affinity cookie');
      if (verdict === 'use') return { kind: 'backend', backend, reason: 'affinity-cookie', clientId, setCookie: false };
      if (verdict === 'held') return FAILOVER_HOLD;
      lost = true;
    } else if (trace !== undefined) {
      step(trace, 'affinity-cookie', 'skipped', token?.backendId, token === undefined ? 'the affinity cookie is not valid (forged, damaged or signed with a key no longer configured): ignored' : `the affinity cookie names ${token.backendId}, which is no longer in the pool`);
    }
  } else if (trace !== undefined) {
    step(trace, 'affinity-cookie', 'skipped', undefined, 'no affinity cookie');
  }
  const sessionId = facts.sessionId;
  if (!lost && sessionId !== undefined && sessionId.length > 0) {
    const suffix = routeOfSessionId(sessionId);
    const bySuffix = suffix === undefined ? undefined : snapshot.byRoute.get(suffix);
    if (bySuffix !== undefined) {
      const verdict = named(bySuffix, exclude);
      if (trace !== undefined) sessionStep(trace, 'route-suffix', verdict, bySuffix, exclude, `the session id's route suffix "${suffix}"`);
      if (verdict === 'use') return { kind: 'backend', backend: bySuffix, reason: 'route-suffix', clientId, setCookie: true };
      if (verdict === 'held') return FAILOVER_HOLD;
      lost = true;
    } else {
      if (trace !== undefined) step(trace, 'route-suffix', 'skipped', undefined, suffix === undefined ? 'the session id has no route suffix' : `no backend has the route "${suffix}"`);
      const learnedId = ctx.learnedBackend(sessionId);
      const learned = learnedId === undefined ? undefined : snapshot.byId.get(learnedId);
      if (learned !== undefined) {
        const verdict = named(learned, exclude);
        if (trace !== undefined) sessionStep(trace, 'learned-session', verdict, learned, exclude, 'the session id, learned from its Set-Cookie,');
        if (verdict === 'use') return { kind: 'backend', backend: learned, reason: 'learned-session', clientId, setCookie: true };
        if (verdict === 'held') return FAILOVER_HOLD;
        lost = true;
      } else if (trace !== undefined) {
        step(trace, 'learned-session', 'skipped', undefined, 'the session id was not learned from any backend');
      }
    }
  } else if (trace !== undefined && !lost) {
    step(trace, 'route-suffix', 'skipped', undefined, 'no servlet session id');
  }

  // Rule 3: new session (or one whose backend is gone).
  return place(facts.clientAddress, snapshot, ctx, exclude, lost ? 'replaced' : 'new-session', clientId, trace);
}

/** Rule 1: partition mode. */
function routePartition(key: string, facts: RequestFacts, snapshot: PoolSnapshot, ctx: RoutingContext, exclude: ReadonlySet<string> | undefined, trace: RouteTrace | undefined): Decision {
  const token = facts.affinityCookie === undefined ? undefined : ctx.verifyCookie(facts.affinityCookie);
  const clientId = token?.clientId;
  const lookup = ctx.partitionOf?.(key);
  // `exclude` holds servers that refused this very request before any byte was sent; the
  // proxy retries only a partition assigned by this request (partition-new). An assignment
  // whose server refused it is therefore that fresh one, holding no data yet: place it anew.
  const refusedFresh = lookup !== undefined && !lookup.pinned && exclude !== undefined && exclude.has(lookup.backend);
  if (lookup !== undefined && !refusedFresh) {
    const how = lookup.pinned ? 'pinned in the config file (affinity.partitions)' : 'durably assigned';
    if (lookup.previous !== undefined && clientId !== undefined && token!.backendId === lookup.previous) {
      // Moved with --drain: a session still live on the old server finishes there.
      const previous = snapshot.byId.get(lookup.previous);
      if (previous !== undefined && usable(previous, exclude) && ctx.sessionBackend?.(clientId) === previous.id) {
        if (trace !== undefined) step(trace, 'partition', 'applied', previous.id, `partition "${key}" moved to ${lookup.backend} with --drain; this live session finishes on ${previous.id}`);
        return { kind: 'backend', backend: previous, reason: 'partition-previous', clientId, setCookie: false };
      }
    }
    const home = snapshot.byId.get(lookup.backend);
    if (home === undefined || !usable(home, exclude)) {
      if (trace !== undefined) step(trace, 'partition', 'unavailable', lookup.backend, `partition "${key}" is ${how} to ${lookup.backend}, which is ${home?.state ?? 'not in the pool'}: 503 until it is back (a partition is never sent to a server that does not hold its data)`);
      return PARTITION_DOWN;
    }
    if (trace !== undefined) step(trace, 'partition', 'applied', home.id, `partition "${key}" is ${how} to ${home.id}${lookup.previous !== undefined ? `; live sessions on ${lookup.previous} finish there (moved with --drain)` : ''}`);
    return { kind: 'backend', backend: home, reason: 'partition', clientId, setCookie: token?.backendId !== home.id };
  }
  // A new partition: placed like a new session, but hashed on the key and bounded by the
  // number of partitions each backend holds; a backend at maxSessions takes none.
  let skip = exclude;
  let full: Set<string> | undefined;
  for (const backend of snapshot.acceptingNew) {
    if (ctx.activeSessions(backend.id) >= backend.maxSessions) {
      skip = new Set(skip).add(backend.id);
      (full ??= new Set()).add(backend.id);
    }
  }
  const load: LoadView = { activeSessions: (id) => ctx.partitionCount?.(id) ?? 0, balanceFactor: ctx.balanceFactor };
  const decision = place(key, snapshot, load, skip, 'partition-new', clientId, trace, full);
  if (trace !== undefined) {
    const placed = trace.steps.pop()!; // place()'s own step, reworded for a partition
    step(
      trace,
      'partition',
      decision.kind === 'backend' ? 'applied' : 'unavailable',
      placed.backend,
      decision.kind === 'backend'
        ? `partition "${key}" is not assigned yet; its first request assigns it to ${decision.backend.id} (weighted rendezvous hashing of the key, bounded by the partitions each server holds), durably`
        : `partition "${key}" is not assigned yet, and no backend takes new partitions now`,
    );
  }
  return decision.kind === 'backend' ? { ...decision, assignPartition: key } : decision;
}

function usable(backend: BackendView, exclude: ReadonlySet<string> | undefined): boolean {
  return backend.servesExisting && (exclude === undefined || !exclude.has(backend.id));
}

function step(trace: RouteTrace, rule: RouteStep['rule'], outcome: RouteStep['outcome'], backend: string | undefined, detail: string): void {
  trace.steps.push(backend === undefined ? { rule, outcome, detail } : { rule, outcome, backend, detail });
}

function sessionStep(trace: RouteTrace, rule: RouteStep['rule'], verdict: Named, backend: BackendView, exclude: ReadonlySet<string> | undefined, what: string): void {
  const id = backend.id;
  if (verdict === 'use') {
    step(trace, rule, 'applied', id, `${what} names ${id} (${backend.state}), which keeps its existing sessions`);
  } else if (verdict === 'held') {
    step(trace, rule, 'held', id, `${what} names ${id}, which is down but within affinity.failoverDelay: the session waits for it (503 with Retry-After) instead of losing its server`);
  } else {
    const why = exclude?.has(id) === true ? 'refused the connection for this request' : backend.state === 'disabled' ? 'is disabled' : 'is down and failoverDelay has passed';
    step(trace, rule, 'lost', id, `${what} names ${id}, which ${why}: the session is placed anew`);
  }
}

/**
 * place picks the new-session backend. Walking the key's ranking for the first backend
 * that fits is the same as taking the highest score among those that fit, so no sort is
 * needed: pass 1 finds the key's first choice and the load totals bounded load needs;
 * only when that backend is full does pass 2 scan again for the best one that fits
 * (rare: it takes a skewed client population or backends at maxSessions).
 *
 * Among candidates of equal weight the score grows with the raw rendezvousHash, so pass 1
 * keeps the highest hash per weight class and takes a logarithm only for each class's
 * winner: none for a pool of equal weights, one per distinct weight otherwise.
 */
function place(
  hashKey: string,
  snapshot: PoolSnapshot,
  ctx: LoadView,
  exclude: ReadonlySet<string> | undefined,
  reason: RouteReason,
  clientId: string | undefined,
  trace?: RouteTrace,
  full?: ReadonlySet<string>,
): Decision {
  const table = placementTable(snapshot.acceptingNew);
  const { backends, ids, idHashes, weightOf, classOf, classWeights } = table;
  const count = backends.length;
  const classes = classWeights.length;
  if (winner.length < classes) growScratch(classes);
  for (let c = 0; c < classes; c++) winner[c] = -1;

  const keyHash = hash32(hashKey);
  let totalActive = 0;
  let totalWeight = 0;
  for (let i = 0; i < count; i++) {
    if (exclude !== undefined && exclude.has(ids[i]!)) continue;
    const active = ctx.activeSessions(ids[i]!);
    totalActive += active;
    totalWeight += weightOf[i]!;
    const hash = rendezvousHash(keyHash, idHashes[i]!);
    const c = classOf[i]!;
    if (winner[c]! < 0 || hash > winnerHash[c]!) {
      winner[c] = i;
      winnerHash[c] = hash;
      winnerActive[c] = active;
    }
  }

  // The best of the class winners; equal scores go to the first in snapshot order.
  let bestIndex = -1;
  let bestActive = 0;
  let bestScore = -1;
  for (let c = 0; c < classes; c++) {
    const index = winner[c]!;
    if (index < 0) continue;
    const score = classes === 1 ? 0 : weightedScore(winnerHash[c]!, classWeights[c]!);
    if (bestIndex < 0 || score > bestScore || (score === bestScore && index < bestIndex)) {
      bestIndex = index;
      bestScore = score;
      bestActive = winnerActive[c]!;
    }
  }
  const scale = ctx.balanceFactor * (totalActive + 1);
  let decision: Decision;
  if (bestIndex < 0) decision = NO_BACKEND;
  else {
    const best = backends[bestIndex]!;
    decision = fits(best, bestActive, scale, totalWeight) ? { kind: 'backend', backend: best, reason, clientId, setCookie: true } : secondChoice(table, bestIndex, keyHash, ctx, exclude, scale, totalWeight, reason, clientId);
  }
  if (trace !== undefined) tracePlacement(trace, hashKey, keyHash, snapshot, ctx, exclude, full, scale, totalWeight, reason, decision);
  return decision;
}

/** secondChoice: the key's first choice is full, so the best-scoring candidate that fits. */
function secondChoice(
  table: PlacementTable,
  bestIndex: number,
  keyHash: number,
  ctx: LoadView,
  exclude: ReadonlySet<string> | undefined,
  scale: number,
  totalWeight: number,
  reason: RouteReason,
  clientId: string | undefined,
): Decision {
  const { backends } = table;
  const count = backends.length;

  let next: BackendView | undefined;
  let nextScore = -1;
  for (let i = 0; i < count; i++) {
    const backend = backends[i]!;
    if (i === bestIndex || (exclude !== undefined && exclude.has(backend.id))) continue;
    if (!fits(backend, ctx.activeSessions(backend.id), scale, totalWeight)) continue;
    const score = weightedScore(rendezvousHash(keyHash, backend.idHash), backend.weight);
    if (score > nextScore) {
      next = backend;
      nextScore = score;
    }
  }
  return next === undefined ? POOL_FULL : { kind: 'backend', backend: next, reason, clientId, setCookie: true };
}

/**
 * PlacementTable is the read-only table new-session placement scans, derived once per
 * snapshot (Envoy's split: a change rebuilds the table, picking never mutates it). It
 * holds the candidates in flat arrays because V8 reads a frozen array several times
 * slower than a plain one in a hot loop, and groups them by weight (see place()).
 */
interface PlacementTable {
  readonly backends: readonly BackendView[];
  readonly ids: readonly string[];
  readonly idHashes: Float64Array;
  readonly weightOf: Float64Array;
  /** classOf[i] is the weight class of backends[i]. */
  readonly classOf: Uint16Array;
  /** classWeights[c] is the weight shared by class c. */
  readonly classWeights: readonly number[];
}

/** Keyed by the snapshot's acceptingNew array, so a table goes when its snapshot goes. */
const tables = new WeakMap<readonly BackendView[], PlacementTable>();

function placementTable(candidates: readonly BackendView[]): PlacementTable {
  let table = tables.get(candidates);
  if (table === undefined) {
    const classWeights: number[] = [];
    const classOf = new Uint16Array(candidates.length);
    candidates.forEach((backend, i) => {
      let c = classWeights.indexOf(backend.weight);
      if (c < 0) c = classWeights.push(backend.weight) - 1;
      classOf[i] = c;
    });
    table = {
      backends: Array.from(candidates),
      ids: candidates.map((b) => b.id),
      idHashes: Float64Array.from(candidates, (b) => b.idHash),
      weightOf: Float64Array.from(candidates, (b) => b.weight),
      classOf,
      classWeights,
    };
    tables.set(candidates, table);
  }
  return table;
}

// Per-class scratch for place(): route() is synchronous and never re-entered (a
// RoutingContext must not call route()), so one set of arrays serves every call.
let winner = new Int32Array(8);
let winnerHash = new Float64Array(8);
let winnerActive = new Float64Array(8);

function growScratch(classes: number): void {
  winner = new Int32Array(classes);
  winnerHash = new Float64Array(classes);
  winnerActive = new Float64Array(classes);
}

/** fits: under maxSessions, and one more session keeps it within ceil(balanceFactor x its weighted share of (active + 1)). */
function fits(backend: BackendView, active: number, scale: number, totalWeight: number): boolean {
  return active < backend.maxSessions && active + 1 <= capOf(backend, scale, totalWeight);
}

function capOf(backend: BackendView, scale: number, totalWeight: number): number {
  return Math.ceil((scale * backend.weight) / totalWeight);
}

/**
 * tracePlacement records, for an explanation, every candidate placement saw with the very
 * numbers it decided on (scale and total weight from place()'s own pass) and the step
 * that says what placement decided. Only called with a trace; allocates freely.
 */
function tracePlacement(
  trace: RouteTrace,
  hashKey: string,
  keyHash: number,
  snapshot: PoolSnapshot,
  ctx: LoadView,
  exclude: ReadonlySet<string> | undefined,
  full: ReadonlySet<string> | undefined,
  scale: number,
  totalWeight: number,
  reason: RouteReason,
  decision: Decision,
): void {
  const candidates: CandidateStep[] = snapshot.acceptingNew.map((backend) => {
    const score = weightedScore(rendezvousHash(keyHash, backend.idHash), backend.weight);
    const load = ctx.activeSessions(backend.id);
    const base = { id: backend.id, state: backend.state, score, load };
    if (full?.has(backend.id) === true) return { ...base, cap: null, fits: false, skipped: 'max-sessions' as const };
    if (exclude?.has(backend.id) === true) return { ...base, cap: null, fits: false, skipped: 'excluded' as const };
    const cap = capOf(backend, scale, totalWeight);
    return { ...base, cap: Number.isFinite(cap) ? cap : null, fits: fits(backend, load, scale, totalWeight) };
  });
  trace.candidates = candidates.sort((a, b) => b.score - a.score);
  const subject = reason === 'replaced' ? 'the session is placed anew: a session' : 'a new session';
  if (decision.kind === 'backend') {
    trace.steps.push({ rule: 'new-session', outcome: 'applied', backend: decision.backend.id, detail: `${subject} from "${hashKey}" goes to ${decision.backend.id}: the highest-scoring backend (weighted rendezvous hashing) that takes new sessions and is under its bounded-load cap and maxSessions` });
  } else {
    trace.steps.push({
      rule: 'new-session',
      outcome: 'unavailable',
      detail: snapshot.acceptingNew.length === 0 ? 'no backend takes new sessions (all down, draining, disabled or in maintenance): 503' : 'every backend that takes new sessions is full (maxSessions or bounded-load cap): 503',
    });
  }
}
