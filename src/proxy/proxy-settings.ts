/**
 * ProxySettings are the parts of the config the request path reads, flattened once per
 * (re)load so no request walks the config tree.
 */
import type { Config } from '../config/schema.js';
import { choiceCookieName } from '../routing/backend-choice.js';
import { compilePartitionKey, type PartitionKeyReader } from '../routing/partition-key.js';
import { PathRules } from '../routing/path-rules.js';
import { FILE_STATE_HEALTH, type StateHealth } from '../pool/readiness.js';

/** ProxySettings is an immutable, flattened slice of Config for the proxy. */
export interface ProxySettings {
  readonly affinityCookieName: string;
  readonly sessionCookieName: string;
  /** Lower-case "name=" prefix of the session cookie, to spot it in Set-Cookie cheaply. */
  readonly sessionCookiePrefix: string;
  readonly proto: 'http' | 'https';
  readonly websocketIdle: number;
  readonly connectTimeout: number;
  /** timeouts.response: also how long a backend may take to answer a WebSocket handshake. */
  readonly responseTimeout: number;
  readonly maxHeaderBytes: number;
  /** timeouts.clientIdle: also how long a request body may stall before the client gets 408. */
  readonly clientIdle: number;
  readonly accessLog: boolean;
  /** Partition mode: reads a request's partition key (compiled once); undefined in session mode. */
  readonly partitionKey: PartitionKeyReader | undefined;
  /** Partition mode: a request without a key gets 400 instead of falling through to session rules. */
  readonly partitionKeyRequired: boolean;
  /** Path rules, compiled once; undefined without rules (the request path then skips them entirely). */
  readonly paths: PathRules | undefined;
  /** Name of the backend-choice cookie of `allow` rules (src/routing/backend-choice.ts). */
  readonly choiceCookieName: string;
  /** listen.healthPath: the path the balancer answers itself with its health (src/proxy/health-path.ts). */
  readonly healthPath: string | undefined;
  /** listen.proxyProtocol: connections from trustedProxies start with a PROXY header (src/proxy/proxy-protocol-gate.ts). */
  readonly proxyProtocol: boolean;
  /** The shared-state health reported on healthPath (the file store is always ok while running). */
  readonly stateHealth: StateHealth;
}

/** proxySettings derives the request-path settings from a validated config. */
export function proxySettings(config: Config): ProxySettings {
  const spec = config.affinity.partitionKey;
  const partitionMode = config.affinity.mode === 'partition' && spec !== undefined;
  return Object.freeze({
    affinityCookieName: config.affinity.cookie.name,
    sessionCookieName: config.affinity.sessionCookie,
    sessionCookiePrefix: `${config.affinity.sessionCookie.toLowerCase()}=`,
    proto: config.listen.tls ? 'https' : 'http',
    websocketIdle: config.timeouts.websocketIdle,
    connectTimeout: config.timeouts.connect,
    responseTimeout: config.timeouts.response,
    maxHeaderBytes: config.limits.maxHeaderBytes,
    clientIdle: config.timeouts.clientIdle,
    accessLog: config.log.access,
    partitionKey: partitionMode ? compilePartitionKey(spec!) : undefined,
    partitionKeyRequired: partitionMode && spec!.required,
    paths: PathRules.compile(config.paths),
    choiceCookieName: choiceCookieName(config.affinity.cookie.name),
    healthPath: config.listen.healthPath,
    proxyProtocol: config.listen.proxyProtocol,
    stateHealth: FILE_STATE_HEALTH,
  });
}

/**
 * backendHeadLimit is the largest response head taken from a backend: limits.maxHeaderBytes,
 * at least undici's 16 KiB default. Shared by HTTP forwarding and WebSocket handshakes.
 */
export function backendHeadLimit(settings: ProxySettings): number {
  return Math.max(settings.maxHeaderBytes, 16384);
}
