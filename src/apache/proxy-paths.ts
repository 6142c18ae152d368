/**
 * Stateless balancers of a mod_proxy_balancer setup: a second balancer on the same servers,
 * without stickysession, that only sub-paths are proxied to (Servoy's REST API under
 * /servoy-service/rest_ws/). Merging it into the sticky pool would pin REST clients to one
 * server; servoy-lb's equivalent is a `paths` rule with `affinity: "none"`. Pure.
 */
import type { ApacheSetup, BalancerFact } from './extract.js';
import { normalizePath } from './values.js';

/**
 * statelessPrefixes returns the path prefixes (each ending in "/") a non-sticky balancer
 * serves, or undefined when it is sticky, a WebSocket balancer, or proxied to from "/" or by
 * a regular expression (then it is served by the one pool as before).
 */
export function statelessPrefixes(b: BalancerFact, setup: ApacheSetup): string[] | undefined {
  if (b.settings.some((s) => s.param.key === 'stickysession')) return undefined;
  if (b.members.every((m) => m.url.scheme === 'ws' || m.url.scheme === 'wss')) return undefined;
  const routes = setup.routes.filter((r) => r.target.kind === 'balancer' && r.target.key === b.key);
  if (routes.length === 0 || routes.some((r) => r.regex || normalizePath(r.path) === '')) return undefined;
  return [...new Set(routes.map((r) => `${normalizePath(r.path)}/`))];
}
