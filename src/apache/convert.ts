/**
 * Apache mod_proxy_balancer (+ mod_proxy_wstunnel) config -> lb.config.json. The rules,
 * each explained where it is applied:
 *
 * - The pool is the balancer `ProxyPass "/"` points to (else the first with http members).
 *   Other balancers whose members are the same servers (host:port), typically the ws://
 *   balancer of mod_proxy_wstunnel, are merged into it: servoy-lb tunnels WebSockets to the
 *   session's server itself. Balancers of other servers are not converted (one warning).
 * - Each server becomes a backend: id = route (else a name from the host, else servoy-N),
 *   url = its http(s) origin (ws -> http, wss -> https), weight = loadfactor, route = route.
 * - Members Apache gives nothing (status +S, +H, +R) are left out with a warning naming the
 *   `servoy-lb backends add` command: lb.config.json holds no admin state, and a server
 *   added to the pool at start would take new sessions at once. Disabled and draining ones
 *   (+D, +N) still serve their users' sticky sessions: imported, with the `servoy-lb drain`
 *   command to run after start. `nofailover=On` -> affinity.failoverDelay.
 * - A non-sticky balancer on the same servers under a sub-path -> an `affinity: "none"`
 *   path rule (proxy-paths.ts).
 * - Everything servoy-lb cannot express gets one warning with its line; nothing is
 *   dropped silently. Directives that have nothing to do with proxying are ignored.
 *
 * Pure: text in, config object and warnings out.
 */
import { type ApacheNode, parseApache, type ImportWarning } from './parse.js';
import { statelessPrefixes } from './proxy-paths.js';
import { type ApacheSetup, type BalancerFact, type MemberFact, type RouteFact, type SslFact, type VhostFact, extractSetup } from './extract.js';
import {
  type ApacheUrl,
  type Param,
  STATUS_FLAGS,
  TOKEN,
  formatDuration,
  hostPort,
  isOn,
  isTlsScheme,
  list,
  normalizePath,
  parseStatus,
  parseTimeout,
  plural,
} from './values.js';

/** Where the generated config points editors for completion (as lb.config.json and the README do). */
export const SCHEMA_REF = './schema/lb.config.schema.json';

/** NoBalancerMemberError: the text has no BalancerMember, so there is no pool to convert. */
export class NoBalancerMemberError extends Error {
  constructor(
    /** Files the text includes (not followed): the pool may be defined in one of them. */
    readonly includes: string[],
  ) {
    super('no BalancerMember directive found');
    this.name = 'NoBalancerMemberError';
  }
}

export interface ApacheImport {
  /** lb.config.json content, "$schema" first; valid against the config schema. */
  config: Record<string, unknown>;
  /** Sorted by line; lines without a line number first. */
  warnings: ImportWarning[];
}

/** importApache converts Apache config text; throws NoBalancerMemberError when there is no pool. */
export function importApache(text: string): ApacheImport {
  const parsed = parseApache(text);
  return importNodes(parsed.nodes, parsed.warnings);
}

/** importNodes converts an already parsed config (e.g. with its Include files expanded). */
export function importNodes(nodes: readonly ApacheNode[], parseWarnings: readonly ImportWarning[], setup = extractSetup(nodes)): ApacheImport {
  if (setup.memberCount === 0) throw new NoBalancerMemberError(setup.includes);
  const warnings = [...parseWarnings, ...setup.warnings];
  const config = convertSetup(setup, warnings);
  return { config, warnings: sortWarnings(warnings) };
}

/** sortWarnings orders warnings by line (file by file), those without a line first; stable. */
export function sortWarnings(warnings: readonly ImportWarning[]): ImportWarning[] {
  return warnings
    .map((w, i) => ({ w, i }))
    .sort((a, b) => (a.w.line ?? 0) - (b.w.line ?? 0) || a.i - b.i)
    .map(({ w }) => w);
}

/**
 * placeholderEnv is an environment in which every `${NAME}` stands for a distinct small
 * number (valid as a host, a port and a file name), so that a config still holding
 * references from the Apache file can be validated before the real values exist.
 */
export function placeholderEnv(): NodeJS.ProcessEnv {
  const values = new Map<string, string>();
  return new Proxy<NodeJS.ProcessEnv>(
    {},
    {
      get: (_target, name) => {
        if (typeof name !== 'string') return undefined;
        if (!values.has(name)) values.set(name, String(values.size + 1));
        return values.get(name);
      },
    },
  );
}

/** formatWarning writes one warning as the CLI prints it. */
export function formatWarning(warning: ImportWarning): string {
  return warning.line === undefined ? `import-apache: ${warning.message}` : `import-apache: line ${warning.line}: ${warning.message}`;
}

type Role = 'http' | 'ws';

/** Server is one backend-to-be: its http member and the members of the same host:port in merged balancers. */
interface Server {
  key: string;
  main: MemberFact;
  twins: MemberFact[];
  /** http(s) origin for servoy-lb. */
  url: string;
  id: string;
  route?: string;
  loadfactor: number;
  /** Status letters that keep Apache from giving it new sessions. */
  out: string[];
}

interface Timed {
  ms: number;
  line: number;
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LEAVE_OUT = ['D', 'S', 'H', 'N', 'R'];
/** Disabled and draining members still serve their sticky sessions in Apache: imported, then drained. */
const DRAIN = ['D', 'N'];
const WS_SCHEMES = new Set(['ws', 'wss']);
const HTTP_SCHEMES = new Set(['http', 'https', 'ajp']);

/** Worker parameters servoy-lb has no setting for. */
const UNSUPPORTED_WORKER = new Set([
  'min',
  'max',
  'smax',
  'ttl',
  'acquire',
  'disablereuse',
  'enablereuse',
  'flushpackets',
  'flushwait',
  'iobuffersize',
  'receivebuffersize',
  'keepalive',
  'ping',
  'secret',
  'responsefieldsize',
  'hcexpr',
  'hctemplate',
  'mapping',
  'addressttl',
]);

function convertSetup(setup: ApacheSetup, warnings: ImportWarning[]): Record<string, unknown> {
  const warn = (line: number | undefined, message: string): void => void warnings.push(line === undefined ? { message } : { line, message });
  const balancers = [...setup.balancers.values()];

  // --- Which balancer is the pool --------------------------------------------------------
  const rootRoute = setup.routes.find(
    (r) => r.target.kind === 'balancer' && !r.regex && normalizePath(r.path) === '' && (setup.balancers.get(r.target.key)?.members.length ?? 0) > 0,
  );
  const withMembers = balancers.filter((b) => b.members.length > 0);
  const primary: BalancerFact =
    rootRoute?.target.kind === 'balancer'
      ? setup.balancers.get(rootRoute.target.key)!
      : (withMembers.find((b) => b.members.some((m) => HTTP_SCHEMES.has(m.url.scheme))) ?? withMembers[0]!);
  const why = rootRoute ? `ProxyPass ${rootRoute.path} points to it` : 'no ProxyPass "/" names a balancer; it is the first one';

  for (const b of balancers) {
    if (b.members.length === 0 && !setup.routes.some((r) => r.target.kind === 'balancer' && r.target.key === b.key)) {
      warn(b.line, `${b.name} has no BalancerMember; ignored`);
    }
  }

  // --- Servers of the pool ---------------------------------------------------------------
  const servers = new Map<string, Server>();
  const serverKey = (m: MemberFact): string | undefined => {
    const url = httpUrlOf(m, setup, () => {});
    return url === undefined ? undefined : hostPort(url);
  };
  for (const m of primary.members) {
    const url = httpUrlOf(m, setup, warn);
    if (url === undefined) {
      warn(m.line, `BalancerMember ${m.url.raw}: servoy-lb proxies to http://, https://, ws:// and wss:// servers only; left out`);
      continue;
    }
    if (m.url.path !== '' && m.url.path !== '/') {
      warn(m.line, `BalancerMember ${m.url.raw} has the path ${m.url.path}; servoy-lb forwards request paths unchanged: it is dropped`);
    }
    if (m.url.userinfo) warn(m.line, `BalancerMember ${origin(url)} has user information (user@); servoy-lb does not send it: dropped`);
    const key = hostPort(url);
    const existing = servers.get(key);
    if (existing === undefined) {
      servers.set(key, { key, main: m, twins: [], url: origin(url), id: '', loadfactor: 1, out: [] });
    } else if (WS_SCHEMES.has(existing.main.url.scheme) && !WS_SCHEMES.has(m.url.scheme)) {
      existing.twins.push(existing.main);
      existing.main = m;
      existing.url = origin(url);
    } else if (WS_SCHEMES.has(m.url.scheme) && !WS_SCHEMES.has(existing.main.url.scheme)) {
      existing.twins.push(m);
    } else {
      warn(m.line, `BalancerMember ${m.url.raw} is the same server as line ${existing.main.line}; left out`);
    }
  }

  const merged: BalancerFact[] = [];
  const stateless = new Map<BalancerFact, string[]>();
  for (const b of withMembers) {
    if (b === primary) continue;
    const matching = b.members.filter((m) => servers.has(serverKey(m) ?? ''));
    if (matching.length === 0) {
      warn(
        b.line,
        `${b.name} (${plural(b.members.length, 'member')}) is not converted: servoy-lb fronts one pool of servers, here ${primary.name} (${why}); run a separate servoy-lb for the other pool`,
      );
      continue;
    }
    merged.push(b);
    const prefixes = statelessPrefixes(b, setup);
    if (prefixes !== undefined) {
      stateless.set(b, prefixes);
      continue;
    }
    if (!b.members.every((m) => WS_SCHEMES.has(m.url.scheme))) {
      warn(b.line, `${b.name} has the same servers as ${primary.name}: merged into one pool`);
    }
    for (const m of b.members) {
      const server = servers.get(serverKey(m) ?? '');
      if (server) server.twins.push(m);
      else warn(m.line, `BalancerMember ${m.url.raw} of ${b.name} has no member at the same host:port in ${primary.name}; left out`);
    }
  }
  if (servers.size === 0) {
    // Only unusable members (e.g. fcgi://): there is no pool to convert.
    throw new NoBalancerMemberError(setup.includes);
  }
  const serverList = [...servers.values()];

  // --- Worker parameters: timeouts, health checks, retry ---------------------------------
  const responses: Timed[] = [];
  const connects: Timed[] = [];
  const wsIdles: Timed[] = [];
  const retries: Timed[] = [];
  const hc = new Map<string, { value: string; line: number }>();

  const workerParams = (params: readonly Param[], line: number, role: Role, where: string, identityOk: boolean): void => {
    const unsupported: string[] = [];
    const unknown: string[] = [];
    for (const p of params) {
      if (p.value === undefined) {
        unknown.push(p.raw);
        continue;
      }
      switch (p.key) {
        case 'route':
        case 'loadfactor':
        case 'status':
          if (!identityOk) unsupported.push(p.raw);
          break;
        case 'timeout':
        case 'connectiontimeout':
        case 'retry': {
          const ms = parseTimeout(p.value);
          if (ms === undefined) warn(line, `${where} ${p.raw}: not a timeout; ignored`);
          else if (p.key === 'connectiontimeout') connects.push({ ms, line });
          else if (p.key === 'retry') retries.push({ ms, line });
          else if (ms > 0) (role === 'ws' ? wsIdles : responses).push({ ms, line });
          break;
        }
        case 'hcmethod':
        case 'hcuri':
        case 'hcinterval':
        case 'hcpasses':
        case 'hcfails': {
          const seen = hc.get(p.key);
          if (seen === undefined) hc.set(p.key, { value: p.value, line });
          else if (seen.value !== p.value) warn(line, `${where} ${p.raw} differs from ${p.key}=${seen.value} (line ${seen.line}): servoy-lb checks every backend the same way; using ${seen.value}`);
          break;
        }
        case 'upgrade':
          break; // servoy-lb tunnels every WebSocket upgrade itself
        case 'lbset':
          warn(line, `${where} ${p.raw}: servoy-lb has no lbsets (all backends form one set); ignored`);
          break;
        case 'redirect':
          warn(line, `${where} ${p.raw}: servoy-lb has no redirect routes; ignored`);
          break;
        default:
          if (UNSUPPORTED_WORKER.has(p.key)) unsupported.push(p.raw);
          else unknown.push(p.raw);
      }
    }
    if (unsupported.length > 0) warn(line, `${where} ${list(unsupported)}: no servoy-lb equivalent; ignored`);
    if (unknown.length > 0) warn(line, `${where}: unknown parameter${unknown.length === 1 ? '' : 's'} ${list(unknown)}; ignored`);
  };

  for (const server of serverList) {
    const members = [server.main, ...server.twins];
    for (const m of members) {
      workerParams(m.params, m.line, WS_SCHEMES.has(m.url.scheme) ? 'ws' : 'http', 'BalancerMember', true);
    }
  }
  for (const ws of setup.workerSettings) {
    const server = servers.get(hostPort(ws.url));
    if (server === undefined) {
      warn(ws.line, `ProxySet for ${ws.url.raw}, which is not a server of ${primary.name}; ignored`);
      continue;
    }
    workerParams(ws.params, ws.line, WS_SCHEMES.has(ws.url.scheme) ? 'ws' : 'http', 'ProxySet', false);
  }

  // --- Balancer settings: stickiness and friends ------------------------------------------
  let sticky: { cookie: string; param?: string; line: number; value: string } | undefined;
  let failoverDelay: string | undefined;
  for (const b of [primary, ...merged]) {
    if (stateless.has(b)) continue;
    for (const s of b.settings) {
      const { param, line } = s;
      const value = param.value ?? '';
      const where = `${s.directive} ${param.raw}`;
      switch (param.key) {
        case 'stickysession': {
          const [cookie = '', urlParam] = value.split('|');
          if (b !== primary && sticky !== undefined) {
            if (cookie !== sticky.cookie) warn(line, `${where} on ${b.name} differs from stickysession=${sticky.value} (line ${sticky.line}); using ${sticky.cookie}`);
            break;
          }
          if (sticky !== undefined && sticky.value !== value) warn(line, `${where} replaces stickysession=${sticky.value} (line ${sticky.line})`);
          sticky = { cookie, line, value };
          if (urlParam !== undefined && urlParam !== '') sticky.param = urlParam;
          break;
        }
        case 'lbmethod':
          warn(line, `${where} has no equivalent: servoy-lb places new sessions by weighted consistent hashing of the client address with bounded load (affinity.balanceFactor), and keeps each session on its server`);
          break;
        case 'scolonpathdelim':
          break; // servoy-lb always reads ;jsessionid= path parameters
        case 'stickysessionsep':
          if (value !== '.') warn(line, `${where}: servoy-lb reads the route after the first "." of the session id, as Tomcat writes it; ignored`);
          break;
        case 'timeout':
          warn(line, `${where} on a balancer is how long Apache waits for a free worker; servoy-lb does not queue requests: ignored (backend timeouts are timeouts.connect and timeouts.response)`);
          break;
        case 'nofailover':
          if (isOn(value)) {
            failoverDelay = '60s';
            warn(line, `${where}: servoy-lb holds the sessions of a server that is down for affinity.failoverDelay (set to 60s, Servoy's reconnect window), then places them on another server`);
          }
          break;
        case 'maxattempts':
          warn(line, `${where}: servoy-lb retries only a new session whose connection was refused, on the next eligible backend; ignored`);
          break;
        case 'failonstatus':
          warn(
            line,
            `${where}: no equivalent; servoy-lb takes a backend out after outlier.consecutiveFailures proxy errors${/\b503\b/.test(value) ? ', and treats a 503 to a new session as Servoy maintenance mode (affinity.maintenanceBackoff)' : ''}; ignored`,
          );
          break;
        case 'failontimeout':
        case 'forcerecovery':
          warn(line, `${where}: no servoy-lb equivalent (health checks and outlier detection decide when a backend is down); ignored`);
          break;
        case 'growth':
          warn(line, `${where}: add backends at run time with \`servoy-lb backends add\`; ignored`);
          break;
        case 'nonce':
          warn(line, `${where}: the balancer-manager is replaced by servoy-lb's admin API (admin.token); ignored`);
          break;
        default:
          warn(line, `${where} is not a balancer parameter servoy-lb knows; ignored`);
      }
    }
  }

  const affinity: Record<string, unknown> = {};
  const cookie: Record<string, unknown> = {};
  const routeCookie = setup.routeCookie;
  // stickysession names either the backends' session cookie (JSESSIONID) or, in the
  // route-cookie recipe, the balancer's own cookie: that one is servoy-lb's affinity cookie.
  const stickyIsRouteCookie =
    sticky !== undefined && (routeCookie !== undefined ? sameName(sticky.cookie, routeCookie.value.name) : /^routeid$/i.test(sticky.cookie));
  const sessionCookie = sticky !== undefined && !stickyIsRouteCookie && sticky.cookie !== '' ? sticky.cookie : 'JSESSIONID';
  const anyRoute = primary.members.some((m) => lastValue(m.params, 'route') !== undefined);
  const usableName = (name: string): boolean => COOKIE_NAME.test(name) && !sameName(name, sessionCookie);
  if (routeCookie !== undefined) {
    const c = routeCookie.value;
    if (usableName(c.name)) {
      cookie.name = c.name;
      warn(
        routeCookie.line,
        `the route cookie ${c.name}=.%{BALANCER_WORKER_ROUTE}e becomes servoy-lb's own signed affinity cookie, also named ${c.name} (affinity.cookie.name); browsers' old ${c.name} cookies are not honoured${anyRoute ? ", and the members' route= values become backend ids only" : ''}`,
      );
    } else {
      warn(routeCookie.line, `the route cookie ${c.name} is replaced by servoy-lb's own signed affinity cookie (affinity.cookie.name, default SERVOYLB)`);
    }
    if (c.secure) cookie.secure = true;
    if (c.sameSite !== undefined) {
      const sameSite = ({ strict: 'Strict', lax: 'Lax', none: 'None' } as Record<string, string>)[c.sameSite.toLowerCase()];
      if (sameSite === undefined) warn(routeCookie.line, `SameSite=${c.sameSite} is not Strict, Lax or None; ignored`);
      else if (sameSite === 'None' && !c.secure) warn(routeCookie.line, 'SameSite=None without Secure: browsers drop such a cookie; ignored');
      else cookie.sameSite = sameSite;
    }
    if (c.maxAgeMs !== undefined) cookie.ttl = formatDuration(c.maxAgeMs);
    if (c.unsupported.length > 0) warn(routeCookie.line, `cookie attribute${c.unsupported.length === 1 ? '' : 's'} ${list(c.unsupported)}: no servoy-lb equivalent; ignored`);
  }
  if (sticky !== undefined) {
    if (stickyIsRouteCookie) {
      if (routeCookie === undefined) {
        warn(sticky.line, `stickysession=${sticky.value} names a balancer route cookie (set by a Header directive elsewhere): it becomes servoy-lb's own signed affinity cookie${usableName(sticky.cookie) ? `, named ${sticky.cookie}` : ''}`);
        if (usableName(sticky.cookie)) cookie.name = sticky.cookie;
      }
    } else if (sticky.cookie !== '') {
      affinity.sessionCookie = sticky.cookie;
      if (sticky.param !== undefined && sticky.param.toLowerCase() !== sticky.cookie.toLowerCase()) {
        warn(sticky.line, `stickysession=${sticky.value}: servoy-lb reads the session id from the ${sticky.cookie} cookie or a ;${sticky.cookie.toLowerCase()}= path parameter, not ;${sticky.param}=`);
      }
    }
  } else if (routeCookie === undefined) {
    warn(primary.line, `${primary.name} has no stickysession: Apache spread requests without affinity; servoy-lb pins every session to one server (what Servoy needs)`);
  }
  if (Object.keys(cookie).length > 0) affinity.cookie = cookie;
  if (failoverDelay !== undefined) affinity.failoverDelay = failoverDelay;

  // --- Identity: status, ids, routes, weights ---------------------------------------------
  for (const server of serverList) {
    const status = lastValue(server.main.params, 'status');
    if (status !== undefined) {
      const { flags, unknown } = parseStatus(status);
      if (unknown.length > 0) warn(server.main.line, `status=${status}: unknown flag${unknown.length === 1 ? '' : 's'} ${unknown.join('')}; ignored`);
      server.out = LEAVE_OUT.filter((f) => flags.has(f));
      if (flags.has('I')) warn(server.main.line, 'status=+I (ignore errors) has no equivalent: servoy-lb always counts proxy errors (outlier.consecutiveFailures) and health checks');
      for (const f of ['E', 'C']) {
        if (flags.has(f)) warn(server.main.line, `status=+${f} (${STATUS_FLAGS[f]}) is not carried over: servoy-lb starts every backend as up and lets its health checks decide`);
      }
    }
    for (const twin of server.twins) {
      const twinStatus = lastValue(twin.params, 'status');
      if (twinStatus === undefined) continue;
      const twinOut = LEAVE_OUT.filter((f) => parseStatus(twinStatus).flags.has(f));
      if (twinOut.join('') !== server.out.join('')) {
        warn(twin.line, `status=${twinStatus} differs from the http member (line ${server.main.line}): servoy-lb has one state per server and follows the http member`);
      }
    }
  }

  // With the route-cookie recipe the routes are only that cookie's values, not Tomcat jvmRoutes.
  assignIds(serverList, !stickyIsRouteCookie && !(sticky === undefined && routeCookie !== undefined), warn);

  for (const server of serverList) {
    const raw = lastValue(server.main.params, 'loadfactor');
    if (raw !== undefined) {
      const n = Number(raw);
      if (!Number.isFinite(n) || n <= 0) warn(server.main.line, `loadfactor=${raw} is not a positive number; weight 1`);
      else server.loadfactor = n;
    }
    for (const twin of server.twins) {
      const twinFactor = lastValue(twin.params, 'loadfactor');
      if (twinFactor !== undefined && Number(twinFactor) !== server.loadfactor) {
        warn(twin.line, `loadfactor=${twinFactor} differs from the http member (line ${server.main.line}): servoy-lb has one weight per server; using ${server.loadfactor}`);
      }
    }
  }

  let included = serverList.filter((s) => s.out.every((f) => DRAIN.includes(f)));
  if (included.length === 0) {
    included = serverList;
    for (const s of serverList) {
      warn(
        s.main.line,
        `${s.main.url.raw} has status ${describeFlags(s.out)}, which lb.config.json cannot hold; as every member has such a status it is kept: run \`servoy-lb disable ${s.id}\` right after start`,
      );
    }
  }
  const weights = toWeights(included.map((s) => s.loadfactor));
  if (weights.scaled) {
    warn(included.find((s) => !Number.isInteger(s.loadfactor))!.main.line, `decimal loadfactors: weights are loadfactor × ${weights.factor} (servoy-lb weights are whole numbers; only their ratio matters)`);
  }
  const weightOf = new Map(included.map((s, i) => [s, weights.values[i]!]));
  if (included !== serverList) {
    for (const s of serverList) {
      if (included.includes(s)) continue;
      const weight = s.loadfactor * weights.factor;
      const reason = s.out.includes('H') || s.out.includes('R') ? 'servoy-lb has no standby servers' : 'lb.config.json holds no admin state and servoy-lb would give it new sessions at start';
      warn(
        s.main.line,
        `${s.main.url.raw} is left out (status ${describeFlags(s.out)}): ${reason}; when it should take sessions: servoy-lb backends add ${s.id} ${s.url} --weight ${Math.min(1000, Math.max(1, Math.round(weight)))}`,
      );
    }
  }

  for (const s of included) {
    if (s.out.length > 0 && s.out.every((f) => DRAIN.includes(f))) {
      warn(s.main.line, `${s.main.url.raw} has status ${describeFlags(s.out)}: imported, as Apache still sends it its users' sticky sessions, but lb.config.json holds no drain state: run \`servoy-lb drain ${s.id}\` right after start`);
    }
  }
  const backends = included.map((s) => {
    const backend: Record<string, unknown> = { id: s.id, url: s.url, weight: weightOf.get(s)! };
    if (s.route !== undefined) backend.route = s.route;
    envNote(s.url, s.main.line, 'backend URL', warn);
    return backend;
  });

  // --- What is proxied ---------------------------------------------------------------------
  const poolKeys = new Set([primary.key, ...merged.map((b) => b.key)]);
  const toPool: RouteFact[] = [];
  for (const r of setup.routes) {
    const head = `${r.directive} ${r.path}`;
    if (r.target.kind === 'exclude') {
      warn(r.line, `${head} ! keeps ${r.path} away from the backends in Apache; servoy-lb has no exclusions, so ${r.path} is proxied too (serve it elsewhere)`);
      continue;
    }
    if (r.target.kind === 'balancer') {
      const fact = setup.balancers.get(r.target.key)!;
      if (fact.members.length === 0) {
        warn(r.line, `${head} points to ${r.target.name}, which has no BalancerMember; ignored`);
        continue;
      }
      if (!poolKeys.has(r.target.key)) continue; // the balancer itself got its warning
      toPool.push(r);
      routeFlags(r, warn);
      if (!r.regex && normalizePath(r.path) !== normalizePath(r.target.path)) {
        warn(r.line, `${head} ${r.target.name}${r.target.path} maps ${r.path} to ${r.target.path || '/'} on the backends; servoy-lb forwards request paths unchanged`);
      }
      continue;
    }
    const url = r.target.url;
    const server = HTTP_SCHEMES.has(url.scheme) || WS_SCHEMES.has(url.scheme) ? servers.get(hostPort(url)) : undefined;
    if (server === undefined) {
      warn(r.line, `${head} ${url.raw} proxies to a server outside ${primary.name}; not converted`);
      continue;
    }
    toPool.push(r);
    routeFlags(r, warn);
    const kv = r.params.filter((p) => p.value !== undefined);
    workerParams(kv, r.line, WS_SCHEMES.has(url.scheme) ? 'ws' : 'http', r.directive, false);
    if (servers.size > 1) warn(r.line, `${head} ${url.raw} sends all these requests to one server; servoy-lb sends each to its session's server`);
    if (r.directive !== 'RewriteRule' && !r.regex && normalizePath(r.path) !== normalizePath(url.path)) {
      warn(r.line, `${head} ${url.raw} maps ${r.path} to ${url.path || '/'} on the backend; servoy-lb forwards request paths unchanged`);
    }
  }
  if (toPool.length === 0) {
    warn(primary.line, `no ProxyPass or RewriteRule [P] sends requests to ${primary.name}: servoy-lb sends every request to its backends`);
  } else if (!toPool.some(catchesAll)) {
    const paths = [...new Set(toPool.map((r) => r.path))];
    warn(toPool[0]!.line, `servoy-lb sends every request path to the backends; Apache proxied only ${list(paths)}`);
  }

  // --- Where clients connect ---------------------------------------------------------------
  const { listen, vhost: chosenVhost, usedPorts, portLine } = convertListen(setup, toPool, warn);

  // --- Timeouts, health checks, outlier --------------------------------------------------
  const fromDirective = (key: string): Timed | undefined => {
    const facts = setup.timeouts.filter((t) => t.key === key && t.ms > 0);
    return facts.filter((t) => chosenVhost !== undefined && t.vhost === chosenVhost).pop() ?? facts.filter((t) => t.vhost === undefined).pop();
  };
  const timeouts: Record<string, string> = {};
  const connect = largest(connects, 'connectiontimeout', 'timeouts.connect', warn);
  if (connect !== undefined && connect.ms > 0) timeouts.connect = formatDuration(connect.ms);
  const response = largest(responses, 'timeout', 'timeouts.response', warn) ?? fromDirective('proxytimeout') ?? fromDirective('timeout');
  if (response !== undefined) timeouts.response = formatDuration(response.ms);
  const clientIdle = fromDirective('keepalivetimeout');
  if (clientIdle !== undefined) timeouts.clientIdle = formatDuration(clientIdle.ms);
  const websocketIdle = fromDirective('proxywebsocketidletimeout') ?? largest(wsIdles, 'timeout', 'timeouts.websocketIdle', warn);
  if (websocketIdle !== undefined) timeouts.websocketIdle = formatDuration(websocketIdle.ms);

  const healthCheck = convertHealth(hc, warn);
  const outlier: Record<string, string> = {};
  const retry = largest(retries, 'retry', 'outlier.ejectFor', warn);
  if (retry !== undefined) outlier.ejectFor = formatDuration(retry.ms);

  const admin: Record<string, number> = {};
  if (usedPorts.includes(8081)) {
    admin.port = [8082, 8083, 8084, 9081].find((p) => !usedPorts.includes(p))!;
    warn(portLine, `port 8081 is servoy-lb's default admin port: admin.port is set to ${admin.port}`);
  }

  if (included.some((s) => s.url.startsWith('https:'))) {
    const trust = [...(chosenVhost?.ssl.proxyTrust ?? []), ...setup.serverSsl.proxyTrust];
    for (const t of trust) {
      warn(t.line, `${t.value}: servoy-lb verifies the https backends' certificates with Node.js's trusted CAs; add a private CA with the NODE_EXTRA_CA_CERTS environment variable`);
    }
  }

  const config: Record<string, unknown> = { $schema: SCHEMA_REF };
  if (Object.keys(listen).length > 0) config.listen = listen;
  if (Object.keys(admin).length > 0) config.admin = admin;
  config.backends = backends;
  if (Object.keys(affinity).length > 0) config.affinity = affinity;
  const paths = [...new Set([...stateless.values()].flat())].map((prefix) => ({ prefix, affinity: 'none' }));
  if (paths.length > 0) config.paths = paths;
  if (Object.keys(healthCheck).length > 0) config.healthCheck = healthCheck;
  if (Object.keys(outlier).length > 0) config.outlier = outlier;
  if (Object.keys(timeouts).length > 0) config.timeouts = timeouts;
  return config;
}

/** httpUrlOf is the http(s) URL servoy-lb uses for a member: ws -> http, wss -> https, ajp -> http on the HTTP port. */
function httpUrlOf(m: MemberFact, setup: ApacheSetup, warn: (line: number, message: string) => void): ApacheUrl | undefined {
  const { url } = m;
  if (url.scheme === 'http' || url.scheme === 'https') return url;
  if (url.scheme === 'ws') return { ...url, scheme: 'http' };
  if (url.scheme === 'wss') return { ...url, scheme: 'https' };
  if (url.scheme !== 'ajp') return undefined;
  const host = url.host.toLowerCase();
  const sibling = [...setup.balancers.values()]
    .flatMap((b) => b.members)
    .find((other) => other !== m && other.url.host.toLowerCase() === host && ['http', 'https', 'ws', 'wss'].includes(other.url.scheme));
  if (sibling !== undefined) {
    const scheme = isTlsScheme(sibling.url.scheme) ? 'https' : 'http';
    const port = sibling.url.port;
    const converted: ApacheUrl = { ...url, scheme, path: '' };
    delete converted.port;
    delete converted.portRef;
    if (port !== undefined) converted.port = port;
    if (sibling.url.portRef !== undefined) converted.portRef = sibling.url.portRef;
    warn(m.line, `${url.raw}: servoy-lb speaks HTTP, not AJP, to the backends; using ${origin(converted)} (the port of ${sibling.url.raw}, line ${sibling.line})`);
    return converted;
  }
  const converted: ApacheUrl = { ...url, scheme: 'http', port: 8080, path: '' };
  delete converted.portRef;
  warn(m.line, `${url.raw}: servoy-lb speaks HTTP, not AJP, to the backends; using ${origin(converted)} (Servoy's default HTTP port): check it`);
  return converted;
}

/** origin writes scheme://host[:port]. */
function origin(url: ApacheUrl): string {
  const host = url.host.includes('${') ? url.host : url.host.toLowerCase();
  const port = url.portRef ?? url.port;
  return `${url.scheme}://${host}${port === undefined ? '' : `:${port}`}`;
}

function lastValue(params: readonly Param[], key: string): string | undefined {
  return params.filter((p) => p.key === key && p.value !== undefined).pop()?.value;
}

function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function describeFlags(flags: readonly string[]): string {
  return `${flags.map((f) => `+${f}`).join('')}, ${list(flags.map((f) => STATUS_FLAGS[f]!))}`;
}

/**
 * assignIds gives each server a unique id: its Apache route when that is a valid token,
 * else the first label of its host name, else servoy-N (N = its place in the pool). The
 * route is kept as the backend's route (Tomcat jvmRoute) unless jvmRoutes is false.
 */
function assignIds(servers: Server[], jvmRoutes: boolean, warn: (line: number, message: string) => void): void {
  const used = new Set<string>();
  const claim = (base: string): string => {
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    return id;
  };
  const routeLine = new Map<string, number>();
  // Routes first: they are what the backends put into their session ids.
  for (const s of servers) {
    const route = lastValue(s.main.params, 'route') ?? s.twins.map((t) => lastValue(t.params, 'route')).find((r) => r !== undefined);
    if (route === undefined) continue;
    for (const twin of s.twins) {
      const twinRoute = lastValue(twin.params, 'route');
      if (twinRoute !== undefined && twinRoute !== route) warn(twin.line, `route=${twinRoute} differs from route=${route} of the same server (line ${s.main.line}); servoy-lb uses ${route}`);
    }
    if (!TOKEN.test(route)) {
      warn(s.main.line, `route=${route} cannot be a servoy-lb route (use 1-64 letters, digits, "_" or "-"); left out, so session ids ending in .${route} are not recognised`);
      continue;
    }
    const first = routeLine.get(route);
    if (first !== undefined) {
      warn(s.main.line, `route=${route} is also the route of line ${first}; routes must be unique, so this one is left out`);
      continue;
    }
    routeLine.set(route, s.main.line);
    if (jvmRoutes) s.route = route;
    s.id = claim(route);
  }
  const labels = servers.map((s) => hostLabel(s.main.url.host));
  const count = new Map<string, number>();
  for (const l of labels) if (l !== undefined) count.set(l, (count.get(l) ?? 0) + 1);
  servers.forEach((s, i) => {
    if (s.id !== '') return;
    const label = labels[i];
    const port = /:(\d+)$/.exec(s.url)?.[1] ?? '';
    const base = label === undefined ? `servoy-${i + 1}` : count.get(label)! > 1 && port !== '' ? `${label}-${port}` : label;
    s.id = claim(base);
  });
}

/** hostLabel: `servoy1.example.com` -> `servoy1`; IP addresses, localhost and placeholders -> undefined. */
function hostLabel(host: string): string | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[') || !/^[A-Za-z0-9.-]+$/.test(host)) return undefined;
  const label = host.split('.')[0]!.toLowerCase().slice(0, 64);
  return label === '' || label === 'localhost' ? undefined : label;
}

/**
 * toWeights turns loadfactors into whole weights (1-1000) with the same ratios: as they
 * are when whole, else × 10 (or × 100), else rounded.
 */
function toWeights(factors: readonly number[]): { values: number[]; factor: number; scaled: boolean } {
  for (const factor of [1, 10, 100]) {
    const values = factors.map((f) => f * factor);
    if (values.every((v) => Math.abs(v - Math.round(v)) < 1e-9) && Math.max(...values) <= 1000) {
      return { values: values.map((v) => Math.max(1, Math.round(v))), factor, scaled: factor !== 1 };
    }
  }
  const factor = Math.max(...factors) * 10 <= 1000 ? 10 : 1;
  return { values: factors.map((f) => Math.min(1000, Math.max(1, Math.round(f * factor)))), factor, scaled: true };
}

/** largest picks the largest of per-server timeouts; servoy-lb has one value for all. */
function largest(values: readonly Timed[], param: string, key: string, warn: (line: number, message: string) => void): Timed | undefined {
  if (values.length === 0) return undefined;
  const max = values.reduce((a, b) => (b.ms > a.ms ? b : a));
  const other = values.find((v) => v.ms !== max.ms);
  if (other !== undefined) {
    warn(other.line, `${param}= differs between servers; servoy-lb has one ${key} for all: using the largest, ${formatDuration(max.ms)}`);
  }
  return max;
}

/** routeFlags warns about ProxyPass flags (bare words) servoy-lb has no use for. */
function routeFlags(r: RouteFact, warn: (line: number, message: string) => void): void {
  for (const p of r.params) {
    if (p.value !== undefined) continue;
    if (p.key === 'nocanon') continue; // servoy-lb forwards the path as the client sent it
    warn(r.line, `${r.directive} flag ${p.raw} is not supported; ignored`);
  }
}

/** catchesAll: a ProxyPass of "/" or a ProxyPassMatch whose pattern matches every path. */
function catchesAll(r: RouteFact): boolean {
  if (r.directive === 'RewriteRule') {
    if (r.conditional) return false;
  } else if (!r.regex) return normalizePath(r.path) === '';
  try {
    const re = new RegExp(r.path);
    return re.test('/') && re.test('/any/path.html');
  } catch {
    return false;
  }
}

/** convertHealth maps mod_proxy_hcheck's member parameters to healthCheck. */
function convertHealth(hc: Map<string, { value: string; line: number }>, warn: (line: number, message: string) => void): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const uri = hc.get('hcuri');
  const path = uri === undefined ? '/' : uri.value.startsWith('/') ? uri.value : `/${uri.value}`;
  if (uri !== undefined) out.path = path;
  const method = hc.get('hcmethod');
  if (method !== undefined && !/^(get|head)$/i.test(method.value)) {
    warn(method.line, `hcmethod=${method.value}: servoy-lb health checks are GET ${path} requests`);
  }
  const interval = hc.get('hcinterval');
  if (interval !== undefined) {
    const ms = parseTimeout(interval.value);
    if (ms === undefined || ms <= 0) warn(interval.line, `hcinterval=${interval.value}: not a duration; ignored`);
    else out.interval = formatDuration(ms);
  }
  for (const [param, key] of [
    ['hcpasses', 'rise'],
    ['hcfails', 'fall'],
  ] as const) {
    const fact = hc.get(param);
    if (fact === undefined) continue;
    if (/^\d+$/.test(fact.value) && Number(fact.value) >= 1) out[key] = Number(fact.value);
    else warn(fact.line, `${param}=${fact.value}: not a positive whole number; ignored`);
  }
  return out;
}

/** envNote tells when a value still holds a `${NAME}` that no Define in this file gave. */
function envNote(value: string, line: number, what: string, warn: (line: number, message: string) => void): void {
  const names = [...value.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1]!);
  if (names.length > 0) {
    warn(line, `${what} ${value}: ${list(names.map((n) => `\${${n}}`))} is not defined in this file; servoy-lb reads it from the environment when it loads the config, as Apache did`);
  }
}

/**
 * convertListen finds the client side: the virtual host that proxies to the pool (TLS
 * preferred), else the main server's Listen; SSLCertificateFile / KeyFile -> listen.tls;
 * a plain virtual host that only redirects to https -> listen.tls.redirectPort.
 */
export function convertListen(
  setup: ApacheSetup,
  toPool: readonly RouteFact[],
  warn: (line: number | undefined, message: string) => void,
): { listen: Record<string, unknown>; vhost?: VhostFact; usedPorts: number[]; portLine?: number } {
  const listen: Record<string, unknown> = {};
  const usedPorts: number[] = [];
  let candidates = [...new Set(toPool.map((r) => r.vhost).filter((v): v is VhostFact => v !== undefined))];
  if (candidates.length === 0 && (toPool.length === 0 || toPool.some((r) => r.vhost === undefined))) {
    // ProxyPass in the main server applies to every virtual host (ProxyPassInherit).
    candidates = setup.vhosts.filter((v) => v.redirectsToHttps === undefined);
  }
  const effective = (vhost: VhostFact | undefined): SslFact => {
    const own = vhost?.ssl;
    const main = setup.serverSsl;
    if (own === undefined) return main;
    return {
      engine: own.engine ?? main.engine,
      cert: own.cert ?? main.cert,
      key: own.key ?? (own.cert ? undefined : main.key),
      chain: own.chain ?? main.chain,
      extraCerts: [...own.extraCerts],
      tuning: [...own.tuning, ...main.tuning],
      verifyClient: own.verifyClient ?? main.verifyClient,
      proxyTrust: own.proxyTrust,
    } as SslFact;
  };
  const hasTls = (ssl: SslFact): boolean => ssl.cert !== undefined && ssl.engine?.value !== false;
  const chosen = candidates.find((v) => hasTls(effective(v))) ?? candidates[0];
  const ssl = effective(chosen);
  const tlsOn = hasTls(ssl);

  const portOfVhost = (v: VhostFact): number | undefined => v.addresses.find((a) => a.port !== undefined)?.port;
  let port: number | undefined;
  let host: string | undefined;
  let portLine: number | undefined;
  if (chosen !== undefined) {
    port = portOfVhost(chosen);
    host = chosen.addresses.find((a) => a.host !== undefined)?.host;
    portLine = chosen.line;
  }
  if (port === undefined && setup.listens.length > 0) {
    const pick = setup.listens.find((l) => (tlsOn ? l.protocol === 'https' || l.port === 443 : l.protocol !== 'https' && l.port !== 443)) ?? setup.listens[0]!;
    port = pick.port;
    host ??= pick.host;
    portLine = pick.line;
  }
  if (host !== undefined) {
    if (/^[\d.]+$/.test(host) || host.includes(':')) listen.host = host;
    else warn(portLine, `listen address ${host} is a host name; servoy-lb listens on all addresses (set listen.host to an IP address to narrow it)`);
  }
  if (port !== undefined) {
    listen.port = port;
    usedPorts.push(port);
  } else {
    warn(undefined, 'no Listen or <VirtualHost> port found: servoy-lb listens on its default port, 8080');
  }

  if (ssl.engine?.value === true && ssl.cert === undefined) {
    warn(ssl.engine.line, 'SSLEngine on without SSLCertificateFile: listen.tls left out (servoy-lb serves plain HTTP)');
  }
  if (tlsOn && ssl.cert !== undefined) {
    const tls: Record<string, unknown> = { cert: ssl.cert.value, key: ssl.key?.value ?? ssl.cert.value };
    if (ssl.key === undefined) warn(ssl.cert.line, 'no SSLCertificateKeyFile: listen.tls.key is the certificate file, which must then hold the private key too');
    for (const [what, fact] of [
      ['certificate', ssl.cert],
      ['key', ssl.key],
    ] as const) {
      if (fact === undefined) continue;
      envNote(fact.value, fact.line, `TLS ${what}`, warn);
      if (!fact.value.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(fact.value) && !fact.value.startsWith('${')) {
        warn(fact.line, `${fact.value} is relative to Apache's ServerRoot; servoy-lb reads it relative to the config file: make it absolute`);
      }
    }
    if (ssl.chain !== undefined) {
      warn(ssl.chain.line, `SSLCertificateChainFile ${ssl.chain.value}: servoy-lb reads the chain from listen.tls.cert: append the chain to the certificate file`);
    }
    for (const line of ssl.extraCerts) warn(line, 'a second SSLCertificateFile (e.g. an ECDSA certificate next to an RSA one): servoy-lb serves one certificate, the first');
    if (ssl.tuning.length > 0) {
      warn(ssl.tuning[0]!.line, `${list([...new Set(ssl.tuning.map((t) => t.value))])}: TLS settings are not configurable in servoy-lb (Node.js defaults, TLS 1.2 or newer); ignored`);
    }
    if (ssl.verifyClient !== undefined && !/^none$/i.test(ssl.verifyClient.value)) {
      warn(ssl.verifyClient.line, `SSLVerifyClient ${ssl.verifyClient.value}: servoy-lb does not ask clients for certificates; ignored`);
    }
    const redirect = setup.vhosts.find((v) => v !== chosen && v.redirectsToHttps !== undefined && portOfVhost(v) !== undefined && portOfVhost(v) !== port);
    if (redirect !== undefined) {
      tls.redirectPort = portOfVhost(redirect)!;
      usedPorts.push(tls.redirectPort as number);
    }
    listen.tls = tls;
  }

  for (const v of candidates) {
    if (v === chosen) continue;
    const p = portOfVhost(v);
    if (p !== undefined && !usedPorts.includes(p)) {
      warn(v.line, `<VirtualHost ${v.addresses.map((a) => a.raw).join(' ')}> also proxies to the pool: servoy-lb listens on one port (${port ?? 8080}); not converted`);
      usedPorts.push(p);
    }
  }
  for (const l of setup.listens) {
    if (!usedPorts.includes(l.port) && port !== undefined) {
      warn(l.line, `Listen ${l.host ?? ''}${l.host ? ':' : ''}${l.port}: servoy-lb listens on port ${port}${listen.tls && (listen.tls as Record<string, unknown>).redirectPort !== undefined ? ` (and redirects ${(listen.tls as Record<string, unknown>).redirectPort})` : ''} only; not converted`);
    }
  }
  const out: { listen: Record<string, unknown>; vhost?: VhostFact; usedPorts: number[]; portLine?: number } = { listen, usedPorts };
  if (chosen !== undefined) out.vhost = chosen;
  if (portLine !== undefined) out.portLine = portLine;
  return out;
}
