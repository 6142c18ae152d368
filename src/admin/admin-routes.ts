/**
 * The admin API's calls (SPEC "Admin API"): what each method and path asks of AdminControl,
 * with its input checked and its success recorded (the log's audit line and, for a change,
 * an event in GET /api/events). Who may call them is admin-server.ts's business; the HTTP
 * plumbing is admin-http.ts's.
 */
import { isIP } from 'node:net';
import { backendSchema } from '../config/schema.js';
import { friendlyErrorMap, issuesToProblems } from '../config/zod-problems.js';
import { readiness } from '../pool/readiness.js';
import { isObject, route, type AdminLogger, type Call, type Route } from './admin-http.js';
import { AdminError, type AdminControl } from './control.js';
import { observeRoutes } from './observe-routes.js';

const ACTIONS = ['drain', 'undrain', 'disable', 'enable'] as const;

/** The Servoy admin pages the dashboard links per server (SPEC "Path rules"). */
export const SERVOY_ADMIN_PATH = '/servoy-admin/';

/** DashboardInfo is GET /api/dashboard: what the page needs once, beyond the live calls. */
export interface DashboardInfo {
  /** affinity.mode: the partitions section is shown in partition mode only. */
  readonly mode: 'session' | 'partition';
  /** The balancer's client-facing URL (a wildcard bind shows as 127.0.0.1), or null when unknown. */
  readonly trafficUrl: string | null;
  /**
   * Links to each server's /servoy-admin/ through the balancer: `path` is set when a path
   * rule with `allow` covers it and lets the caller's address in (the link adds
   * ?servoy-lb-backend=ID); else null, and `reason` says why there are no links.
   */
  readonly serverAdmin: { readonly path: string | null; readonly reason: string };
}

/** adminRoutes are the API calls on `control`; see the file comment. */
export function adminRoutes(control: AdminControl, log: AdminLogger): Route[] {
  const audit = (call: Call, what: string, extra: object = {}): void =>
    log.info({ remote: call.req.socket.remoteAddress, ...extra }, `admin: ${what}`);
  /** An admin action that succeeded goes to the events (GET /api/events) with who asked. */
  const done = (call: Call, what: string, backend: string | null, to: string | null = null, from: string | null = null): void =>
    control.recordAdminAction({ backend, what, who: call.req.socket.remoteAddress ?? 'unknown', from, to });
  const yes = (value: string | null): boolean => ['1', 'true', 'yes'].includes(value ?? '');

  return [
    route('GET', '/healthz', () => {
      const report = readiness(control.backends().map((b) => b.state), control.stateHealth());
      return { status: report.ok ? 200 : 503, json: report };
    }, false),

    route('GET', '/api/backends', () => ({ status: 200, json: { backends: control.backends() } })),
    route('POST', '/api/backends', async (call) => {
      const input = parseBackendInput(await call.body());
      audit(call, `add backend ${input.id}`, { url: input.url });
      const backend = await control.addBackend(input);
      done(call, `add ${input.url}`, input.id, backend.state, 'absent');
      return { status: 201, json: { backend } };
    }),
    route('DELETE', '/api/backends/:id', async (call) => {
      const id = call.params.id!;
      const force = yes(call.query.get('force'));
      audit(call, `remove backend ${id}`, { force });
      await control.removeBackend(id, force);
      done(call, force ? 'remove --force' : 'remove', id, 'absent');
      return { status: 200, json: { removed: id } };
    }),
    route('PATCH', '/api/backends/:id', async (call) => {
      const id = call.params.id!;
      const body = await call.body();
      const keys = isObject(body) ? Object.keys(body) : [];
      const weight = isObject(body) ? body.weight : undefined;
      if (keys.length !== 1 || keys[0] !== 'weight' || typeof weight !== 'number') {
        throw new AdminError('INVALID_BODY', 'expected a JSON body {"weight": N} (a whole number from 1 to 1000; weight is the one setting changed at run time)');
      }
      audit(call, `set weight of ${id}`, { weight });
      const backend = await control.setWeight(id, weight);
      done(call, `weight ${weight}`, id);
      return { status: 200, json: { backend } };
    }),
    ...ACTIONS.map((action) =>
      route('POST', `/api/backends/:id/${action}`, async (call) => {
        const id = call.params.id!;
        const close = action === 'disable' && yes(call.query.get('close'));
        audit(call, `${action} ${id}`, close ? { close } : undefined);
        const backend = await control.setAdminState(id, action, close ? { close } : undefined);
        done(call, close ? `${action} --close` : action, id, backend.state);
        return { status: 200, json: { backend } };
      }),
    ),
    route('GET', '/api/route', (call) => {
      const given = (name: string) => {
        const value = call.query.get(name);
        return value === null || value === '' ? undefined : value;
      };
      const query = { key: given('key'), client: given('client'), path: given('path'), cookie: given('cookie'), session: given('session') };
      if (query.key === undefined && query.client === undefined && query.cookie === undefined && query.session === undefined) throw new AdminError('INVALID_BODY', 'say which request to explain: client=ADDR (a client address) and, in partition mode, key=KEY, e.g. /api/route?client=10.0.0.5');
      const explained = control.explainRoute(query);
      if (query.path === undefined) return { status: 200, json: explained };
      // The path rules' answer goes next to the route explanation; the client defaults to the key when it is an address.
      const client = query.client ?? (query.key !== undefined && isIP(query.key) !== 0 ? query.key : undefined);
      const pathExplanation = control.explainPath?.(query.path, client);
      return { status: 200, json: { ...explained, ...(pathExplanation === undefined ? {} : { path: pathExplanation }) } };
    }),
    route('POST', '/api/reload', async (call) => {
      audit(call, 'reload');
      const result = await control.reload();
      done(call, 'reload', null);
      return { status: 200, json: result };
    }),
    route('GET', '/api/partitions', (call) => {
      const offset = pagingNumber(call.query.get('offset'), 0, 'offset');
      const limit = Math.min(pagingNumber(call.query.get('limit'), 1000, 'limit'), 10_000);
      return { status: 200, json: control.listPartitions(offset, limit) };
    }),
    route('PUT', '/api/partitions/:key', async (call) => {
      const key = call.params.key!;
      const body = await call.body();
      const backend = isObject(body) ? body.backend : undefined;
      const drain = isObject(body) ? body.drain === true : false;
      if (typeof backend !== 'string' || backend === '') throw new AdminError('INVALID_BODY', 'expected a JSON body {"backend": "<id>", "drain": false}');
      audit(call, `move partition ${key} to ${backend}`, { drain });
      const partition = await control.movePartition(key, backend, drain);
      done(call, `move partition ${key}${drain ? ' --drain' : ''}`, backend);
      return { status: 200, json: { partition } };
    }),
    ...observeRoutes(control).map((r) => route('GET', r.path, (call) => r.handle(call.query))),
    route('GET', '/api/dashboard', (call) => ({ status: 200, json: dashboardInfo(control, call.req.socket.remoteAddress) })),
    route('GET', '/metrics', async () => {
      const { contentType, body } = await control.metrics();
      return { status: 200, text: body, contentType };
    }),
  ];
}

/**
 * dashboardInfo answers GET /api/dashboard for a caller at `clientAddress`. The admin
 * links are judged for the address the caller reaches the admin API from: normally the
 * one its browser reaches the balancer from too.
 */
export function dashboardInfo(control: AdminControl, clientAddress: string | undefined): DashboardInfo {
  const trafficUrl = control.url === undefined || control.url === '' ? null : control.url;
  return { mode: partitionMode(control) ? 'partition' : 'session', trafficUrl, serverAdmin: serverAdminLinks(control, clientAddress, trafficUrl) };
}

/** Whether the control runs in partition mode: its partition list answers instead of NOT_PARTITION_MODE. */
function partitionMode(control: AdminControl): boolean {
  try {
    control.listPartitions(0, 0);
    return true;
  } catch (err) {
    if (err instanceof AdminError && err.code === 'NOT_PARTITION_MODE') return false;
    throw err;
  }
}

function serverAdminLinks(control: AdminControl, clientAddress: string | undefined, trafficUrl: string | null): DashboardInfo['serverAdmin'] {
  const how = `a path rule {"prefix": "${SERVOY_ADMIN_PATH}", "allow": [...]} that lets your address in gives each server a link`;
  if (trafficUrl === null || control.explainPath === undefined) return { path: null, reason: 'this balancer does not say where its clients connect' };
  const explained = control.explainPath(SERVOY_ADMIN_PATH, clientAddress);
  if (explained.verdict === 'allowed') return { path: SERVOY_ADMIN_PATH, reason: explained.reason };
  return { path: null, reason: `no links to each server's ${SERVOY_ADMIN_PATH}: ${explained.reason}; ${how}` };
}

/** parseBackendInput checks a POST /api/backends body with the config file's own backend rules. */
function parseBackendInput(body: unknown): Parameters<AdminControl['addBackend']>[0] {
  if (!isObject(body)) {
    throw new AdminError('INVALID_BODY', 'expected a JSON object such as {"id": "servoy-c", "url": "http://10.0.0.13:8080", "weight": 1}');
  }
  const parsed = backendSchema.safeParse(body, { error: friendlyErrorMap });
  if (!parsed.success) {
    const problems = issuesToProblems(parsed.error.issues);
    throw new AdminError('INVALID_BODY', `invalid backend: ${problems.join('; ')}`, problems);
  }
  const { id, url, weight, maxSessions, route: routeName } = parsed.data;
  return { id, url, weight, ...(maxSessions === undefined ? {} : { maxSessions }), ...(routeName === undefined ? {} : { route: routeName }) };
}

/** pagingNumber reads a non-negative integer query parameter, or answers 400. */
function pagingNumber(value: string | null, fallback: number, name: string): number {
  if (value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new AdminError('INVALID_BODY', `the query parameter "${name}" must be a whole number >= 0`);
  return n;
}
