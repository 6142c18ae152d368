/**
 * Placement is the proxy's side of routing, shared by the HTTP request path and the
 * WebSocket upgrade path: it gathers a request's routing facts, asks the router (or
 * stateless placement, or a client's backend choice) where it goes, and applies a
 * decision's side effects (partition assignment, session accounting) before anything is
 * forwarded. It never decides where a request goes itself: src/routing/ does.
 */
import { route } from '../routing/router.js';
import { choiceFromCookies, choiceFromQuery, choiceSetCookie, routeChosen, signChoice } from '../routing/backend-choice.js';
import type { PathRule } from '../routing/path-rules.js';
import { routeStateless } from '../routing/stateless.js';
import { readCookies, sessionIdFromPath } from '../routing/request-cookies.js';
import type { Decision, RequestFacts } from '../routing/types.js';
import type { ProxyDeps } from './proxy-server.js';
import type { ProxySettings } from './proxy-settings.js';

/** A decision that names a backend. */
export type BackendDecision = Extract<Decision, { kind: 'backend' }>;

/** What placement needs of the proxy's collaborators (the same object: a reload's `trusted` is seen at once). */
export type PlacementDeps = Pick<ProxyDeps, 'pool' | 'sessions' | 'trusted' | 'logger' | 'resolvePartition'>;

/**
 * RoutingView is what routing reads of a request (RawRequestView is one): the TCP
 * peer, the target, and the headers the facts come from (headers(): every header, each
 * name lower-case with its values in order, read only in partition mode).
 */
export interface RoutingView {
  readonly peer: string | undefined;
  readonly url: string;
  readonly host: string | undefined;
  readonly cookie: string | undefined;
  readonly forwardedFor: string | undefined;
  headers(): Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** Placement routes and commits requests for one ProxyServer; see the file comment. */
export class Placement {
  readonly #deps: PlacementDeps;
  /** Requests in flight per backend (stateless placement reads it). */
  readonly #inFlightOf: (backendId: string) => number;
  /** Turn number for stateless placement: ties among the least busy are taken in turn. */
  #turn = 0;

  constructor(deps: PlacementDeps, inFlightOf: (backendId: string) => number) {
    this.#deps = deps;
    this.#inFlightOf = inFlightOf;
  }

  /**
   * factsOf are what the router decides on, read through a RoutingView: client address,
   * affinity and session cookies, partition key.
   */
  factsOf(view: RoutingView, settings: ProxySettings): RequestFacts {
    const peer = view.peer;
    const trusted = this.#deps.trusted;
    const clientAddress = trusted.empty ? (peer ?? '') : trusted.clientAddress(peer, view.forwardedFor);
    const cookieHeader = view.cookie;
    const cookies = readCookies(cookieHeader, settings.affinityCookieName, settings.sessionCookieName);
    const url = view.url;
    const sessionId = cookies.session ?? (url.includes(';') ? sessionIdFromPath(url, settings.sessionCookieName) : undefined);
    if (settings.partitionKey === undefined) return { clientAddress, affinityCookie: cookies.affinity, sessionId };
    const partitionKey = settings.partitionKey({ host: view.host, url, headers: view.headers(), cookieHeader, clientAddress });
    return { clientAddress, affinityCookie: cookies.affinity, sessionId, partitionKey };
  }

  /**
   * commit applies a decision's side effects before anything is forwarded: the session is
   * counted. (A new partition assignment was made durable before, by resolvePartition, so
   * the answer the client gets is backed by it.) Returns the client id.
   */
  commit(decision: BackendDecision, facts: RequestFacts, existingClientId: string | undefined): string {
    const { backend } = decision;
    const sessions = this.#deps.sessions;
    const clientId = decision.clientId ?? existingClientId ?? sessions.codec.newClientId();
    // A session counts as confirmed once its client presents the balancer's cookie.
    sessions.accounting.touch(clientId, backend.id, facts.partitionKey, decision.clientId !== undefined);
    if (facts.partitionKey !== undefined) sessions.partitions?.seen(facts.partitionKey);
    sessions.accounting.counters(backend.id).requests++;
    return clientId;
  }

  /**
   * countRequest counts a request that is no session (stateless, or on a chosen server):
   * nothing is touched in the session tables, bounded load or maxSessions. Returns the
   * (empty) client id the exchange carries.
   */
  countRequest(backendId: string): string {
    this.#deps.sessions.accounting.counters(backendId).requests++;
    return '';
  }

  route(facts: RequestFacts, exclude?: ReadonlySet<string>): Decision {
    return route(facts, this.#deps.pool.snapshot, this.#deps.sessions, exclude);
  }

  /** reroute is where a request goes after its backend refused it (or, stateless, answered 503): by the rule that placed it. */
  reroute(reason: string, facts: RequestFacts, exclude: ReadonlySet<string> | undefined): Decision {
    return reason === 'stateless' ? this.routeStateless(exclude) : this.route(facts, exclude);
  }

  routeStateless(exclude?: ReadonlySet<string>): Decision {
    return routeStateless(this.#deps.pool.snapshot, this.#inFlightOf, this.#turn++, exclude);
  }

  /**
   * choice is the backend an allowed client chose under an `allow` rule: from
   * `?servoy-lb-backend=ID` (the response then sets the choice cookie; an empty value
   * clears it), else from a genuine choice cookie for the rule's prefix. Undefined: no
   * choice, normal routing.
   */
  choice(target: string, cookieHeader: string | undefined, rule: PathRule, settings: ProxySettings): { decision: Decision | undefined; cookie: string | undefined } | undefined {
    const codec = this.#deps.sessions.codec;
    const secure = this.#deps.sessions.cookie.secure;
    const asked = choiceFromQuery(target);
    if (asked === '') return { decision: undefined, cookie: `${settings.choiceCookieName}=; Path=${encodeURI(rule.prefix)}; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}` };
    if (asked !== undefined) {
      const decision = routeChosen(asked, this.#deps.pool.snapshot);
      const cookie = decision.kind === 'backend' ? choiceSetCookie(settings.choiceCookieName, signChoice(codec, rule.prefix, asked), rule.prefix, secure) : undefined;
      return { decision, cookie };
    }
    const chosen = choiceFromCookies(codec, cookieHeader, settings.choiceCookieName, rule.prefix);
    return chosen === undefined ? undefined : { decision: routeChosen(chosen, this.#deps.pool.snapshot), cookie: undefined };
  }

  /**
   * A new partition's assignment is the state store's (with `--workers`, through the
   * primary): ask for it, then go on with the decision (assigned as decided) or a new one
   * (the key lives elsewhere). Returns undefined when there is nothing to ask; the promise
   * rejects when the assignment cannot be stored (or keeps landing elsewhere: at most 3 rounds).
   */
  resolvePartition(decision: BackendDecision, facts: RequestFacts, refused: ReadonlySet<string> | undefined, attempt: number, go: (next: Decision) => void): Promise<void> | undefined {
    const key = decision.assignPartition;
    const resolve = this.#deps.resolvePartition;
    if (key === undefined || resolve === undefined) return undefined;
    if (attempt >= 3) return Promise.reject(new Error('partition assignment did not settle'));
    return resolve(key, decision.backend.id).then((accepted) => go(accepted ? { ...decision, assignPartition: undefined } : this.route(facts, refused)));
  }
}

/** isSessionless: a stateless request, or one on the server its client chose; neither is a session. */
export function isSessionless(decision: BackendDecision): boolean {
  return decision.reason === 'stateless' || decision.reason === 'chosen-backend';
}
