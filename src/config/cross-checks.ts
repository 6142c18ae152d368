/**
 * Rules that span several keys, checked after the schema accepted the file: a config that
 * passes here is one `start` can run. Each rule reports `<json-path>: <reason>` at the
 * key the administrator has to change.
 */
import { isIP } from 'node:net';
import type { Config } from './schema.js';
import { problem } from './json-path.js';

/** crossCheck returns one problem line per broken rule; empty when the config is coherent. */
export function crossCheck(config: Config): string[] {
  return [
    ...checkBackends(config),
    ...checkAffinity(config),
    ...checkListeners(config),
    ...checkTrustedProxies(config.trustedProxies),
    ...checkAddressList(['admin', 'allow'], config.admin.allow ?? []),
    ...checkPaths(config.paths),
    ...checkExpectStatus(config.healthCheck.expectStatus),
  ];
}

function checkBackends(config: Config): string[] {
  const out: string[] = [];
  const ids = new Map<string, number>();
  const routes = new Map<string, number>();
  const urls = new Map<string, number>();
  config.backends.forEach((backend, i) => {
    const firstId = ids.get(backend.id);
    if (firstId !== undefined) out.push(problem(['backends', i, 'id'], `duplicate id ${JSON.stringify(backend.id)} (also backends[${firstId}])`));
    else ids.set(backend.id, i);
    const route = backend.route ?? backend.id;
    const firstRoute = routes.get(route);
    if (firstRoute !== undefined && firstId === undefined) {
      out.push(problem(['backends', i, backend.route === undefined ? 'id' : 'route'], `route ${JSON.stringify(route)} is already used by backends[${firstRoute}] (routes default to the id and must be unique)`));
    } else if (firstRoute === undefined) routes.set(route, i);
    const origin = new URL(backend.url).origin;
    const firstUrl = urls.get(origin);
    if (firstUrl !== undefined) out.push(problem(['backends', i, 'url'], `same server as backends[${firstUrl}] (${origin})`));
    else urls.set(origin, i);
  });
  return out;
}

/**
 * The learned-sessions table is allocated in full at start (lru-cache preallocates): 10
 * million entries take ~400 MB and seconds; a few more digits and start dies of it.
 */
const MAX_LEARNED_SESSIONS = 10_000_000;

function checkAffinity(config: Config): string[] {
  const out: string[] = [];
  const { affinity } = config;
  if (affinity.learnedSessions > MAX_LEARNED_SESSIONS) {
    out.push(problem(['affinity', 'learnedSessions'], `must be at most ${MAX_LEARNED_SESSIONS} (the table is reserved in memory at start)`));
  }
  const ids = new Set(config.backends.map((b) => b.id));
  for (const [key, id] of Object.entries(affinity.partitions)) {
    if (!ids.has(id)) out.push(problem(['affinity', 'partitions', key], `unknown backend ${JSON.stringify(id)} (not in backends)`));
  }
  if (affinity.mode === 'partition' && affinity.partitionKey === undefined) {
    out.push(problem(['affinity', 'partitionKey'], 'required when affinity.mode is "partition" (it says where the partition key comes from)'));
  }
  const key = affinity.partitionKey;
  if (key !== undefined) {
    const at = ['affinity', 'partitionKey'];
    const named = key.from === 'header' || key.from === 'cookie' || key.from === 'query';
    if (named && key.name === undefined) out.push(problem([...at, 'name'], `required when from is ${JSON.stringify(key.from)} (the ${key.from} name)`));
    if (!named && key.name !== undefined) out.push(problem([...at, 'name'], `only used with from "header", "cookie" or "query", not ${JSON.stringify(key.from)}`));
    if (key.from === 'path' && key.segment === undefined) out.push(problem([...at, 'segment'], 'required when from is "path" (the 1-based path segment number)'));
    if (key.from !== 'path' && key.segment !== undefined) out.push(problem([...at, 'segment'], `only used with from "path", not ${JSON.stringify(key.from)}`));
    if (key.pattern !== undefined) {
      const reason = checkPattern(key.pattern);
      if (reason) out.push(problem([...at, 'pattern'], reason));
    }
  }
  const cookie = affinity.cookie;
  if (cookie.sameSite === 'None' && cookie.secure === false) {
    out.push(problem(['affinity', 'cookie', 'secure'], 'must not be false with sameSite "None" (browsers drop such a cookie)'));
  }
  if (cookie.name === affinity.sessionCookie) {
    out.push(problem(['affinity', 'cookie', 'name'], `must differ from affinity.sessionCookie (${JSON.stringify(cookie.name)}), the backend's own session cookie`));
  }
  return out;
}

/** checkPattern says why a partition-key pattern is unusable, or returns undefined. */
function checkPattern(pattern: string): string | undefined {
  let groups: number;
  try {
    new RegExp(pattern);
    groups = new RegExp(`(?:${pattern})|`).exec('')!.length - 1;
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  return groups === 1 ? undefined : `must have exactly one capture group (the key), found ${groups}`;
}

function checkListeners(config: Config): string[] {
  const out: string[] = [];
  const { listen, admin } = config;
  if (!isLoopback(admin.host) && admin.token === undefined) {
    out.push(problem(['admin', 'token'], `required because admin.host ${JSON.stringify(admin.host)} is not a loopback address (start refuses an open admin API without a token)`));
  }
  const overlaps = (a: string, b: string): boolean => a === b || isWildcard(a) || isWildcard(b);
  if (admin.port !== 0 && admin.port === listen.port && overlaps(admin.host, listen.host)) {
    out.push(problem(['admin', 'port'], `same port as listen.port (${listen.port})`));
  }
  if (listen.proxyProtocol && config.trustedProxies.length === 0) {
    out.push(problem(['listen', 'proxyProtocol'], 'needs trustedProxies: the addresses of the load balancers that send the PROXY header (it is accepted from no one else)'));
  }
  const redirect = listen.tls?.redirectPort;
  if (redirect !== undefined && redirect !== 0) {
    if (redirect === listen.port) out.push(problem(['listen', 'tls', 'redirectPort'], `same port as listen.port (${listen.port})`));
    else if (redirect === admin.port && overlaps(admin.host, listen.host)) out.push(problem(['listen', 'tls', 'redirectPort'], `same port as admin.port (${admin.port})`));
  }
  return out;
}

/** isLoopback is true for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const plain = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (plain === 'localhost' || plain === '::1' || plain === '0:0:0:0:0:0:0:1') return true;
  const v4 = plain.startsWith('::ffff:') ? plain.slice(7) : plain;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** isAddressOrCidr is true for "10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8" (what TrustedProxies takes). */
function isAddressOrCidr(entry: string): boolean {
  const [address = '', prefix, extra] = entry.split('/');
  const family = isIP(address);
  const max = family === 4 ? 32 : 128;
  const validPrefix = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= max);
  return family !== 0 && validPrefix && extra === undefined;
}

function checkTrustedProxies(entries: readonly string[]): string[] {
  return checkAddressList(['trustedProxies'], entries);
}

/** checkAddressList: every entry of a list at `path` is an address or CIDR (trustedProxies, admin.allow). */
function checkAddressList(path: readonly (string | number)[], entries: readonly string[]): string[] {
  const out: string[] = [];
  entries.forEach((entry, i) => {
    if (!isAddressOrCidr(entry)) out.push(problem([...path, i], `${JSON.stringify(entry)} is not an IP address or CIDR such as "10.0.0.0/8"`));
  });
  return out;
}

/**
 * checkPaths: each rule does exactly one thing, its prefix is a path in the normal form
 * requests are matched in (see src/routing/path-normalise.ts), no two rules have the same
 * prefix ("/a" and "/a/" are the same), and allowed addresses are addresses or CIDRs.
 */
function checkPaths(rules: Config['paths']): string[] {
  const out: string[] = [];
  const seen = new Map<string, number>();
  rules.forEach((rule, i) => {
    const kinds = (['affinity', 'allow', 'deny'] as const).filter((key) => rule[key] !== undefined);
    if (kinds.length !== 1) {
      out.push(
        problem(['paths', i], kinds.length === 0
          ? 'a rule needs one of "affinity": "none", "allow": [CIDR, ...] or "deny": true'
          : `a rule does one thing: ${kinds.map((k) => JSON.stringify(k)).join(' and ')} cannot be combined (write two rules)`),
      );
    }
    const prefixProblem = checkPrefix(rule.prefix);
    if (prefixProblem !== undefined) out.push(problem(['paths', i, 'prefix'], prefixProblem));
    const key = rule.prefix.endsWith('/') ? rule.prefix.slice(0, -1) : rule.prefix;
    const first = seen.get(key);
    if (first !== undefined) out.push(problem(['paths', i, 'prefix'], `same prefix as paths[${first}] (a trailing "/" makes no difference)`));
    else seen.set(key, i);
    rule.allow?.forEach((entry, j) => {
      if (!isAddressOrCidr(entry)) out.push(problem(['paths', i, 'allow', j], `${JSON.stringify(entry)} is not an IP address or CIDR such as "10.0.0.0/8"`));
    });
  });
  return out;
}

/** checkPrefix says why a prefix could never equal a normalised request path, or returns undefined. */
function checkPrefix(prefix: string): string | undefined {
  if (/[\u0000-\u001f\u007f]/.test(prefix)) return 'must not contain control characters';
  if (prefix.includes('%')) return 'write the path decoded, as Tomcat sees it ("/my app/", not "/my%20app/"): "%" is not allowed';
  if (/[;?#\\]/.test(prefix)) return 'must be a plain path: no ";", "?", "#" or "\\"';
  if (prefix.includes('//')) return 'must not contain "//" (requests are matched with repeated "/" merged)';
  if (prefix.split('/').some((segment) => segment === '.' || segment === '..')) return 'must not contain "." or ".." segments (requests are matched with them resolved)';
  return undefined;
}

function checkExpectStatus(expect: string): string[] {
  for (const part of expect.split(',')) {
    const [low, high = low] = part.split('-').map(Number);
    if (low! < 100 || high! > 599 || low! > high!) {
      return [problem(['healthCheck', 'expectStatus'], `${JSON.stringify(part)} is not an HTTP status or range between 100 and 599`)];
    }
  }
  return [];
}
