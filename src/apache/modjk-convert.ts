/**
 * A mod_jk setup (workers.properties + the httpd config with its JkMount lines), as
 * Servoy's load-balancing guide sets Apache up, -> lb.config.json. The rules:
 *
 * - The pool is the `type=lb` worker mounted on `/*` (else the first lb of worker.list);
 *   each of its balance_workers becomes a backend: id = worker name, route = `route` (else
 *   the worker name, mod_jk's default, which Tomcat's jvmRoute must equal), weight = lbfactor.
 *   Keeping the routes is what lets the users' sessions keep their server on the day of the
 *   switch-over.
 * - servoy-lb speaks HTTP, not AJP: each worker's URL is its Tomcat HTTP connector, assumed
 *   at the AJP port + 71 (8009 -> 8080, 8109 -> 8180: Tomcat's default pair, kept when ports
 *   are shifted per instance), with one warning per worker saying so.
 * - activation=D (mod_jk still serves the worker's sticky sessions) is imported with a
 *   warning giving the `servoy-lb drain` command (lb.config.json holds no admin state);
 *   activation=S is left out with the `servoy-lb backends add` command to bring it back.
 * - A second lb on the same servers, non-sticky and mounted on a sub-path (Servoy's REST
 *   API), becomes a `paths` rule with `affinity: "none"`.
 *
 * Pure: parsed facts in, config object out; warnings are appended to the given list.
 */
import type { ImportWarning } from './parse.js';
import type { ApacheSetup } from './extract.js';
import { SCHEMA_REF, convertListen } from './convert.js';
import { type JkMountFact, mountPrefix } from './modjk-httpd.js';
import { type JkWorker, type JkWorkers, splitList } from './modjk-workers.js';
import { TOKEN, formatDuration, list } from './values.js';

/** The Tomcat HTTP port assumed for an AJP port: 8009 -> 8080, and the same offset for others. */
export function httpPortForAjp(ajpPort: number): number {
  const port = ajpPort + 71;
  return port <= 65535 ? port : 8080;
}

/** JkServer is one AJP worker of the pool, on its way to be a backend. */
interface JkServer {
  worker: JkWorker;
  id: string;
  url: string;
  hostPort: string;
  route?: string;
  weight: number;
  activation: 'A' | 'D' | 'S';
}

/** Worker properties that tune AJP connections or mod_jk's own retries: no servoy-lb equivalent. */
const AJP_TUNING = new Set([
  'socket_timeout',
  'socket_keepalive',
  'connect_timeout',
  'prepost_timeout',
  'ping_timeout',
  'ping_mode',
  'connection_ping_interval',
  'connection_pool_size',
  'connection_pool_minsize',
  'connection_pool_timeout',
  'connection_acquire_timeout',
  'cache_timeout',
  'recycle_timeout',
  'retries',
  'retry_interval',
  'recovery_options',
  'max_packet_size',
  'secret',
  'busy_limit',
  'source',
  'socket_buffer',
  'domain',
  'distance',
  'fail_on_status',
]);
const HANDLED_WORKER = new Set(['type', 'host', 'port', 'lbfactor', 'route', 'jvm_route', 'activation', 'disabled', 'stopped', 'redirect', 'socket_connect_timeout', 'reply_timeout', 'mount']);
const LB_TUNING = new Set(['retries', 'retry_interval', 'error_escalation_time', 'max_reply_timeouts', 'secret', 'session_path', 'lock', 'sync_interval']);

/** convertJk builds the config of a mod_jk setup; `setup` holds the httpd side (listeners, TLS). */
export function convertJk(workers: JkWorkers, mounts: readonly JkMountFact[], setup: ApacheSetup, warnings: ImportWarning[]): Record<string, unknown> | undefined {
  const warn = (line: number | undefined, message: string): void => void warnings.push(line === undefined ? { message } : { line, message });
  const all = workers.workers;
  const typeOf = (w: JkWorker): string => (w.props.get('type')?.value ?? 'ajp13').toLowerCase();
  const membersOf = (lb: JkWorker): string[] => [...splitList(lb.props.get('balance_workers')?.value ?? ''), ...splitList(lb.props.get('balanced_workers')?.value ?? '')];

  const allMounts = [...mounts];
  for (const w of all.values()) {
    const m = w.props.get('mount');
    if (m !== undefined) for (const pattern of splitList(m.value)) allMounts.push({ line: m.line, pattern, worker: w.name, unmount: pattern.startsWith('-') });
  }

  // --- Which worker is the pool ---------------------------------------------------------
  const lbs = [...all.values()].filter((w) => typeOf(w) === 'lb');
  const listed = (w: JkWorker): boolean => workers.list.length === 0 || workers.list.includes(w.name);
  const rootMount = allMounts.find((m) => !m.unmount && mountPrefix(m.pattern) === '/' && all.has(m.worker));
  let pool: JkWorker | undefined = rootMount !== undefined && typeOf(all.get(rootMount.worker)!) === 'lb' ? all.get(rootMount.worker) : lbs.find(listed);
  let memberNames: string[];
  if (pool !== undefined) {
    memberNames = membersOf(pool);
  } else {
    // No lb worker: the AJP workers mounted (or listed) are the servers.
    const single = rootMount !== undefined ? [rootMount.worker] : workers.list.filter((n) => all.has(n) && typeOf(all.get(n)!).startsWith('ajp'));
    memberNames = single;
    if (single.length > 0) warn(all.get(single[0]!)!.line, `no type=lb worker: ${list(single)} ${single.length === 1 ? 'is' : 'are'} the pool`);
  }

  // --- Servers ----------------------------------------------------------------------------
  const servers: JkServer[] = [];
  const used = new Set<string>();
  const routes = new Map<string, number>();
  for (const name of memberNames) {
    const w = all.get(name);
    if (w === undefined) {
      warn(pool?.props.get('balance_workers')?.line ?? pool?.props.get('balanced_workers')?.line, `balance_workers names ${name}, which is not defined; left out`);
      continue;
    }
    const type = typeOf(w);
    if (type !== 'ajp13' && type !== 'ajp14') {
      warn(w.props.get('type')?.line ?? w.line, `worker.${name}.type=${type}: servoy-lb proxies to Tomcat's HTTP connector only; left out`);
      continue;
    }
    const host = w.props.get('host')?.value ?? 'localhost';
    const ajpPort = Number(w.props.get('port')?.value ?? '8009');
    const port = Number.isInteger(ajpPort) && ajpPort > 0 && ajpPort <= 65535 ? httpPortForAjp(ajpPort) : 8080;
    const url = `http://${hostTextOf(w)}:${port}`;
    warn(
      w.line,
      `worker.${name} (AJP ${host}:${ajpPort}): servoy-lb speaks HTTP, so it uses ${url}, Tomcat's HTTP connector at AJP port + 71 (8009 -> 8080); if it listens elsewhere, edit this backend's url in the output`,
    );
    let id = TOKEN.test(name) ? name : `servoy-${servers.length + 1}`;
    for (let n = 2; used.has(id); n++) id = `${TOKEN.test(name) ? name : 'servoy'}-${n}`;
    used.add(id);
    const server: JkServer = { worker: w, id, url, hostPort: hostPortOf(w), weight: 1, activation: activationOf(w) };
    const routeProp = w.props.get('route') ?? w.props.get('jvm_route');
    const route = routeProp?.value ?? name;
    const routeLine = routeProp?.line ?? w.line;
    if (!TOKEN.test(route)) warn(routeLine, `route ${route} of worker ${name} cannot be a servoy-lb route (1-64 letters, digits, "_" or "-"); left out, so session ids ending in .${route} are not recognised`);
    else if (routes.has(route)) warn(routeLine, `route ${route} of worker ${name} is also the route of line ${routes.get(route)}; left out`);
    else {
      routes.set(route, routeLine);
      server.route = route;
    }
    const factor = w.props.get('lbfactor');
    if (factor !== undefined) {
      const n = Number(factor.value);
      if (!Number.isFinite(n) || n <= 0) warn(factor.line, `lbfactor=${factor.value} is not a positive number; weight 1`);
      else server.weight = Math.min(1000, Math.max(1, Math.round(n)));
    }
    servers.push(server);
  }
  if (servers.length === 0) return undefined;

  // --- Worker properties ----------------------------------------------------------------
  const timeouts: Record<string, string> = {};
  let connect = 0;
  let response = 0;
  for (const s of servers) {
    const w = s.worker;
    const ignored: string[] = [];
    for (const [key, prop] of w.props) {
      if (key === 'socket_connect_timeout' || key === 'reply_timeout') {
        const ms = Number(prop.value);
        if (!Number.isFinite(ms) || ms < 0) warn(prop.line, `worker.${w.name}.${key}=${prop.value} is not milliseconds; ignored`);
        else if (key === 'socket_connect_timeout') connect = Math.max(connect, ms);
        else response = Math.max(response, ms);
      } else if (key === 'redirect') {
        warn(prop.line, `worker.${w.name}.redirect=${prop.value}: servoy-lb places the sessions of a server that is down on the others by its own rules; ignored`);
      } else if (AJP_TUNING.has(key) && !HANDLED_WORKER.has(key)) {
        ignored.push(`${key}=${prop.value}`);
      } else if (!HANDLED_WORKER.has(key)) {
        warn(prop.line, `worker.${w.name}.${key} is not a worker property servoy-lb knows; ignored`);
      }
    }
    if (ignored.length > 0) warn(w.line, `worker.${w.name}: ${list(ignored)}: AJP and mod_jk tuning, no servoy-lb equivalent; ignored`);
  }
  if (connect > 0) timeouts.connect = formatDuration(connect);
  if (response > 0) timeouts.response = formatDuration(response);

  // --- The pool's lb properties -----------------------------------------------------------
  const affinity: Record<string, unknown> = {};
  const outlier: Record<string, string> = {};
  if (pool !== undefined) {
    for (const [key, prop] of pool.props) {
      const where = `worker.${pool.name}.${key}=${prop.value}`;
      switch (key) {
        case 'type':
        case 'balance_workers':
        case 'balanced_workers':
        case 'mount':
          break;
        case 'sticky_session':
          if (/^(false|0|no|off)$/i.test(prop.value)) {
            warn(prop.line, `${where}: servoy-lb pins every Servoy session to its server (a non-sticky Servoy pool loses its users' sessions); for stateless paths add a "paths" rule with "affinity": "none"`);
          }
          break;
        case 'sticky_session_force':
          if (/^(true|1|yes|on)$/i.test(prop.value)) {
            affinity.failoverDelay = '60s';
            warn(prop.line, `${where}: servoy-lb holds the sessions of a server that is down for affinity.failoverDelay (set to 60s, Servoy's reconnect window), then places them on another server`);
          }
          break;
        case 'method':
          warn(prop.line, `${where} has no equivalent: servoy-lb places new sessions by weighted consistent hashing of the client address with bounded load (affinity.balanceFactor), and keeps each session on its server`);
          break;
        case 'recover_time': {
          const s = Number(prop.value);
          if (Number.isFinite(s) && s > 0) outlier.ejectFor = formatDuration(s * 1000);
          else warn(prop.line, `${where} is not seconds; ignored`);
          break;
        }
        case 'session_cookie':
          affinity.sessionCookie = prop.value;
          break;
        default:
          if (key === 'session_path' && /^;?jsessionid$/i.test(prop.value)) break;
          warn(prop.line, LB_TUNING.has(key) ? `${where}: no servoy-lb equivalent; ignored` : `${where} is not an lb property servoy-lb knows; ignored`);
      }
    }
  }

  // --- Mounts: the pool, stateless paths, what Apache kept -------------------------------
  const paths: Record<string, unknown>[] = [];
  const poolHosts = new Set(servers.map((s) => s.hostPort));
  const mountedPool: string[] = [];
  for (const m of allMounts) {
    const head = `${m.unmount ? 'JkUnMount' : 'JkMount'} ${m.pattern} ${m.worker}`;
    if (m.unmount) {
      warn(m.line, `${head}: Apache served ${m.pattern} itself; servoy-lb has no exclusions, so it goes to the backends too (serve it elsewhere)`);
      continue;
    }
    const target = all.get(m.worker);
    if (target === undefined) {
      warn(m.line, `${head}: no worker ${m.worker} in workers.properties; ignored`);
      continue;
    }
    const type = typeOf(target);
    if (type === 'status') {
      warn(m.line, `${head}: the jkstatus page is replaced by servoy-lb's admin dashboard and the \`servoy-lb status\`, \`drain\`, \`disable\` commands`);
      continue;
    }
    const prefix = mountPrefix(m.pattern);
    const isPool = target === pool || (pool === undefined && memberNames.includes(target.name));
    if (isPool) {
      if (prefix === undefined) warn(m.line, `${head}: a pattern, not a path prefix; servoy-lb sends every path to the backends`);
      else mountedPool.push(m.pattern);
      continue;
    }
    const targetHosts = type === 'lb' ? membersOf(target).map((n) => all.get(n)) : [target];
    const same = targetHosts.length > 0 && targetHosts.every((w) => w !== undefined && poolHosts.has(hostPortOf(w)));
    if (!same) {
      warn(m.line, `${head}: ${m.worker} is not on the servers of the pool; not converted (run a separate servoy-lb for it)`);
      continue;
    }
    const sticky = type === 'lb' && !/^(false|0|no|off)$/i.test(target.props.get('sticky_session')?.value ?? 'true');
    if (type !== 'lb') warn(m.line, `${head} sends these requests to one server; servoy-lb sends each to its session's server`);
    else if (sticky || prefix === undefined || prefix === '/') warn(m.line, `${head}: ${m.worker} has the same servers as ${pool?.name ?? 'the pool'}: served by the one pool`);
    else if (!paths.some((p) => p.prefix === prefix)) paths.push({ prefix, affinity: 'none' });
  }
  if (pool !== undefined && mountedPool.length === 0) {
    warn(pool.line, `no JkMount sends requests to ${pool.name}: servoy-lb sends every request to its backends`);
  } else if (mountedPool.length > 0 && !mountedPool.some((p) => mountPrefix(p) === '/')) {
    warn(allMounts.find((m) => mountedPool.includes(m.pattern))!.line, `servoy-lb sends every request path to the backends; Apache mounted only ${list(mountedPool)}`);
  }

  // --- Activation ---------------------------------------------------------------------------
  let included = servers.filter((s) => s.activation !== 'S');
  if (included.length === 0) {
    included = servers;
    for (const s of servers) warn(activationLine(s.worker), `worker ${s.worker.name} is stopped (activation=S), as is every worker: it is kept; run \`servoy-lb disable ${s.id}\` right after start`);
  } else {
    for (const s of servers) {
      if (s.activation !== 'S') continue;
      const route = s.route !== undefined ? ` --route ${s.route}` : '';
      warn(activationLine(s.worker), `worker ${s.worker.name} is left out (activation=S, stopped: mod_jk sends it nothing); when it should take sessions: servoy-lb backends add ${s.id} ${s.url} --weight ${s.weight}${route}`);
    }
  }
  for (const s of included) {
    if (s.activation === 'D') {
      warn(activationLine(s.worker), `worker ${s.worker.name} is disabled (activation=D): imported, as it still serves its users' sessions, but lb.config.json holds no drain state: run \`servoy-lb drain ${s.id}\` right after start`);
    }
  }

  const { listen } = convertListen(setup, [], warn);
  const config: Record<string, unknown> = { $schema: SCHEMA_REF };
  if (Object.keys(listen).length > 0) config.listen = listen;
  config.backends = included.map((s) => {
    const backend: Record<string, unknown> = { id: s.id, url: s.url, weight: s.weight };
    if (s.route !== undefined) backend.route = s.route;
    return backend;
  });
  if (Object.keys(affinity).length > 0) config.affinity = affinity;
  if (paths.length > 0) config.paths = paths;
  if (Object.keys(outlier).length > 0) config.outlier = outlier;
  if (Object.keys(timeouts).length > 0) config.timeouts = timeouts;
  return config;
}

/** activationOf reads `activation` (A/D/S, first letter) or the older `disabled` / `stopped` switches. */
function activationOf(w: JkWorker): 'A' | 'D' | 'S' {
  const a = w.props.get('activation')?.value.trim().charAt(0).toUpperCase();
  if (a === 'D' || a === 'S') return a;
  if (/^(true|1)$/i.test(w.props.get('stopped')?.value ?? '')) return 'S';
  if (/^(true|1)$/i.test(w.props.get('disabled')?.value ?? '')) return 'D';
  return 'A';
}

function activationLine(w: JkWorker): number {
  return (w.props.get('activation') ?? w.props.get('stopped') ?? w.props.get('disabled'))?.line ?? w.line;
}

/** hostTextOf: the worker's host as a URL writes it (IPv6 in brackets, names in lower case). */
function hostTextOf(w: JkWorker): string {
  const host = w.props.get('host')?.value ?? 'localhost';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host.toLowerCase();
}

/** hostPortOf names the server an AJP worker reaches, to tell whether two lbs share servers. */
function hostPortOf(w: JkWorker): string {
  return `${hostTextOf(w)}:${Number(w.props.get('port')?.value ?? '8009')}`;
}
