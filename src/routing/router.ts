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
import { hash32, rendezvousHash, rendezvousScore, weightedScore } from './hash.js';
import { routeOfSessionId } from './request-cookies.js';
import type { Decision, RequestFacts, RouteReason, RoutingContext } from './types.js';

const NO_BACKEND: Decision = Object.freeze({ kind: 'unavailable', reason: 'no-backend' });
const PARTITION_DOWN: Decision = Object.freeze({ kind: 'unavailable', reason: 'partition-down' });
const POOL_FULL: Decision = Object.freeze({ kind: 'unavailable', reason: 'pool-full' });

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
 *    (up, draining, drained, maintenance) keeps them; a down or disabled one (or one the
 *    proxy excluded after a refused connection) means the session is placed anew;
 * 3. new session: weighted rendezvous hashing of the client address over the backends
 *    accepting new sessions, minus `exclude`, with bounded load and maxSessions.
 */
export function route(facts: RequestFacts, snapshot: PoolSnapshot, ctx: RoutingContext, exclude?: ReadonlySet<string>): Decision {
  if (facts.partitionKey !== undefined) return routePartition(facts.partitionKey, facts, snapshot, ctx, exclude);
  return routeSession(facts, snapshot, ctx, exclude);
}

/** Rules 2 and 3. */
function routeSession(facts: RequestFacts, snapshot: PoolSnapshot, ctx: RoutingContext, exclude?: ReadonlySet<string>): Decision {
  // Rule 2: existing session.
  let clientId: string | undefined;
  let lost = false; // the session's backend exists but cannot take it: place anew as 'replaced'
  if (facts.affinityCookie !== undefined) {
    const token = ctx.verifyCookie(facts.affinityCookie);
    if (token !== undefined) {
      clientId = token.clientId;
      const backend = snapshot.byId.get(token.backendId);
      if (backend !== undefined) {
        if (usable(backend, exclude)) return { kind: 'backend', backend, reason: 'affinity-cookie', clientId, setCookie: false };
        lost = true;
      }
    }
  }
  const sessionId = facts.sessionId;
  if (!lost && sessionId !== undefined && sessionId.length > 0) {
    const suffix = routeOfSessionId(sessionId);
    const bySuffix = suffix === undefined ? undefined : snapshot.byRoute.get(suffix);
    if (bySuffix !== undefined) {
      if (usable(bySuffix, exclude)) return { kind: 'backend', backend: bySuffix, reason: 'route-suffix', clientId, setCookie: true };
      lost = true;
    } else {
      const learnedId = ctx.learnedBackend(sessionId);
      const learned = learnedId === undefined ? undefined : snapshot.byId.get(learnedId);
      if (learned !== undefined) {
        if (usable(learned, exclude)) return { kind: 'backend', backend: learned, reason: 'learned-session', clientId, setCookie: true };
        lost = true;
      }
    }
  }

  // Rule 3: new session (or one whose backend is gone).
  return place(facts.clientAddress, snapshot, ctx, exclude, lost ? 'replaced' : 'new-session', clientId);
}

/** Rule 1: partition mode. */
function routePartition(key: string, facts: RequestFacts, snapshot: PoolSnapshot, ctx: RoutingContext, exclude: ReadonlySet<string> | undefined): Decision {
  const token = facts.affinityCookie === undefined ? undefined : ctx.verifyCookie(facts.affinityCookie);
  const clientId = token?.clientId;
  const lookup = ctx.partitionOf?.(key);
  // `exclude` holds servers that refused this very request before any byte was sent; the
  // proxy retries only a partition assigned by this request (partition-new). An assignment
  // whose server refused it is therefore that fresh one, holding no data yet: place it anew.
  const refusedFresh = lookup !== undefined && !lookup.pinned && exclude !== undefined && exclude.has(lookup.backend);
  if (lookup !== undefined && !refusedFresh) {
    if (lookup.previous !== undefined && clientId !== undefined && token!.backendId === lookup.previous) {
      // Moved with --drain: a session still live on the old server finishes there.
      const previous = snapshot.byId.get(lookup.previous);
      if (previous !== undefined && usable(previous, exclude) && ctx.sessionBackend?.(clientId) === previous.id) {
        return { kind: 'backend', backend: previous, reason: 'partition-previous', clientId, setCookie: false };
      }
    }
    const home = snapshot.byId.get(lookup.backend);
    if (home === undefined || !usable(home, exclude)) return PARTITION_DOWN;
    return { kind: 'backend', backend: home, reason: 'partition', clientId, setCookie: token?.backendId !== home.id };
  }
  // A new partition: placed like a new session, but hashed on the key and bounded by the
  // number of partitions each backend holds; a backend at maxSessions takes none.
  let skip = exclude;
  for (const backend of snapshot.acceptingNew) {
    if (ctx.activeSessions(backend.id) >= backend.maxSessions) skip = new Set(skip).add(backend.id);
  }
  const load: LoadView = { activeSessions: (id) => ctx.partitionCount?.(id) ?? 0, balanceFactor: ctx.balanceFactor };
  const decision = place(key, snapshot, load, skip, 'partition-new', clientId);
  return decision.kind === 'backend' ? { ...decision, assignPartition: key } : decision;
}

function usable(backend: BackendView, exclude: ReadonlySet<string> | undefined): boolean {
  return backend.servesExisting && (exclude === undefined || !exclude.has(backend.id));
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
  if (bestIndex < 0) return NO_BACKEND;
  const best = backends[bestIndex]!;
  const scale = ctx.balanceFactor * (totalActive + 1);
  if (fits(best, bestActive, scale, totalWeight)) return { kind: 'backend', backend: best, reason, clientId, setCookie: true };

  // The key's first choice is full: the best-scoring candidate that fits.
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

interface Scored {
  readonly backend: BackendView;
  readonly score: number;
}

function rank(keyHash: number, candidates: readonly BackendView[], exclude: ReadonlySet<string> | undefined): Scored[] {
  const scored: Scored[] = [];
  for (const backend of candidates) {
    if (exclude !== undefined && exclude.has(backend.id)) continue;
    scored.push({ backend, score: rendezvousScore(keyHash, backend.idHash, backend.weight) });
  }
  // Highest score first; ties (practically never) by snapshot order, as the max-scan in place() breaks them.
  return scored.sort((a, b) => b.score - a.score || a.backend.index - b.backend.index);
}

/** RankedCandidate is one new-session candidate for a key, as `servoy-lb route` explains it. */
export interface RankedCandidate {
  readonly backend: BackendView;
  /** Weighted rendezvous score of the key on this backend; higher wins. */
  readonly score: number;
  /** Active sessions now (present when a load view was given). */
  readonly activeSessions?: number;
  /** Bounded-load cap for the next session: ceil(balanceFactor x (totalActive + 1) x weight / totalWeight). */
  readonly cap?: number;
  /** Whether a new session for this key may go here now (under maxSessions and cap). */
  readonly fits?: boolean;
}

/**
 * rankCandidates lists the backends accepting new sessions in the order a new session
 * from clientAddress would try them; with a load view it also says which are full, so
 * the first entry with `fits` is where route() would place it. For explanations only:
 * it allocates, route() does not.
 */
export function rankCandidates(clientAddress: string, snapshot: PoolSnapshot, load?: LoadView, exclude?: ReadonlySet<string>): RankedCandidate[] {
  const ranked = rank(hash32(clientAddress), snapshot.acceptingNew, exclude);
  if (load === undefined) return ranked;
  let totalActive = 0;
  let totalWeight = 0;
  const actives = ranked.map(({ backend }) => {
    const active = load.activeSessions(backend.id);
    totalActive += active;
    totalWeight += backend.weight;
    return active;
  });
  const scale = load.balanceFactor * (totalActive + 1);
  return ranked.map(({ backend, score }, i) => {
    const active = actives[i]!;
    return { backend, score, activeSessions: active, cap: capOf(backend, scale, totalWeight), fits: fits(backend, active, scale, totalWeight) };
  });
}
