/**
 * A fake AdminControl for the admin API and admin CLI tests. The admin server is only a
 * translation layer between HTTP and AdminControl, so an in-memory control that records
 * its calls shows that every route reaches the right call and every AdminError becomes
 * the right answer; the real Balancer behind the same API is tested elsewhere.
 */
import { AdminServer, type AdminLogger, type AdminServerOptions } from '../../src/admin/admin-server.js';
import { AdminError, type AdminControl, type BackendStatus, type ReloadResult, type RouteExplanation } from '../../src/admin/control.js';
import { BalancerMetrics } from '../../src/admin/metrics.js';
import { EventLog } from '../../src/admin/events.js';
import { SeriesStore } from '../../src/admin/series.js';
import { mergeSessionLists, type SessionRow } from '../../src/admin/sessions-view.js';

/** A row with defaults; the tests override what they look at. */
export function statusRow(id: string, overrides: Partial<BackendStatus> = {}): BackendStatus {
  return {
    id,
    url: `http://127.0.0.1:${9000 + id.length}`,
    route: id,
    weight: 1,
    maxSessions: null,
    state: 'up',
    admin: 'ready',
    health: 'up',
    holdingSessions: false,
    drainingSince: null,
    sessions: 0,
    websockets: 0,
    requests: 0,
    errors: 0,
    clientAborts: 0,
    bytesIn: 0,
    bytesOut: 0,
    source: 'config',
    ...overrides,
  };
}

/** FakeControl is an in-memory AdminControl that records every call. */
export interface FakeControl extends AdminControl {
  /** The traffic URL the dashboard links through ('' for none). */
  url: string;
  readonly calls: unknown[][];
  readonly rows: Map<string, BackendStatus>;
  readonly metricsSource: BalancerMetrics;
  /** Make reload fail with INVALID_CONFIG. */
  reloadFails: boolean;
  /** Make backends() throw an unexpected (non-AdminError) error. */
  explode: boolean;
  /** The sessions sessions() lists (filtered and cut by it). */
  sessionRows: SessionRow[];
  readonly eventLog: EventLog;
  readonly seriesStore: SeriesStore;
}

/** createFakeControl: servoy-a (up, 3 sessions), servoy-b (up, maxSessions 100). */
export function createFakeControl(): FakeControl {
  const rows = new Map<string, BackendStatus>([
    ['servoy-a', statusRow('servoy-a', { url: 'http://127.0.0.1:9101', sessions: 3, websockets: 1, requests: 1234, errors: 2 })],
    ['servoy-b', statusRow('servoy-b', { url: 'http://127.0.0.1:9102', maxSessions: 100, sessions: 7, requests: 56, errorsByKind: { refused: 1, timeout: 2 }, errors: 3 })],
  ]);
  const calls: unknown[][] = [];
  const get = (id: string): BackendStatus => {
    const row = rows.get(id);
    if (row === undefined) throw new AdminError('UNKNOWN_BACKEND', `no backend "${id}"`);
    return row;
  };
  const fake: FakeControl = {
    url: 'http://127.0.0.1:8080',
    calls,
    rows,
    reloadFails: false,
    explode: false,
    sessionRows: [
      { client: 'aB3dE9…', backend: 'servoy-a', ageMs: 60_000, idleMs: 1_000, requests: 12, websockets: 1 },
      { client: 'Zx81qQ…', backend: 'servoy-b', ageMs: 30_000, idleMs: 5_000, requests: 3, websockets: 0 },
    ],
    eventLog: new EventLog(),
    seriesStore: new SeriesStore(2000, 450),
    async sessions(query) {
      calls.push(['sessions', query]);
      if (query.backend !== undefined) get(query.backend);
      const rows = fake.sessionRows.filter((r) => query.backend === undefined || r.backend === query.backend);
      return { ...mergeSessionLists([{ sessions: rows, total: rows.length }], query.limit), instance: true };
    },
    async events(limit) {
      calls.push(['events', limit]);
      return { events: fake.eventLog.latest(limit) };
    },
    series(seconds) {
      calls.push(['series', seconds]);
      return fake.seriesStore.window(seconds);
    },
    recordAdminAction(action) {
      fake.eventLog.add({ time: new Date().toISOString(), backend: action.backend, from: action.from, to: action.to, cause: `admin ${action.what} by ${action.who}`, kind: 'admin', who: action.who });
    },
    metricsSource: new BalancerMetrics(() => [...rows.values()]),
    backends() {
      calls.push(['backends']);
      if (fake.explode) throw new Error('secret internal failure at /srv/balancer.js:12');
      // A draining backend loses one session (then its websocket) per look, then is drained.
      for (const row of rows.values()) {
        if (row.admin !== 'draining' || row.state === 'drained') continue;
        const next = row.sessions > 0 ? { sessions: row.sessions - 1 } : { websockets: Math.max(0, row.websockets - 1) };
        const updated = { ...row, ...next };
        rows.set(row.id, updated.sessions + updated.websockets === 0 ? { ...updated, state: 'drained' } : updated);
      }
      return [...rows.values()];
    },
    async addBackend(input) {
      calls.push(['addBackend', input]);
      if (rows.has(input.id)) throw new AdminError('BACKEND_EXISTS', `a backend "${input.id}" already exists`);
      const row = statusRow(input.id, { url: input.url, weight: input.weight ?? 1, maxSessions: input.maxSessions ?? null, route: input.route ?? input.id, source: 'runtime' });
      rows.set(input.id, row);
      return row;
    },
    async removeBackend(id, force) {
      calls.push(['removeBackend', id, force]);
      const row = get(id);
      if (row.state !== 'drained' && !force) throw new AdminError('NOT_DRAINED', `${id} is ${row.state}, not drained`);
      rows.delete(id);
    },
    async setWeight(id, weight) {
      calls.push(['setWeight', id, weight]);
      const updated = { ...get(id), weight };
      rows.set(id, updated);
      return updated;
    },
    async setAdminState(id, action, options) {
      calls.push(options === undefined ? ['setAdminState', id, action] : ['setAdminState', id, action, options]);
      const row = get(id);
      const next: Partial<BackendStatus> =
        action === 'drain'
          ? { admin: 'draining', state: 'draining', drainingSince: new Date().toISOString() }
          : action === 'disable'
            ? { admin: 'disabled', state: 'disabled', drainingSince: null }
            : { admin: 'ready', state: 'up', drainingSince: null };
      const updated = { ...row, ...next };
      rows.set(id, updated);
      return updated;
    },
    explainRoute(query): RouteExplanation {
      calls.push(['explainRoute', query]);
      return {
        key: query.key ?? null,
        client: query.client ?? query.key ?? '',
        backend: 'servoy-b',
        rule: 'new-session',
        reason: 'a new session goes to servoy-b: the highest-scoring backend that takes new sessions',
        steps: [
          { rule: 'affinity-cookie', outcome: 'skipped', detail: 'no affinity cookie' },
          { rule: 'new-session', outcome: 'applied', backend: 'servoy-b', detail: 'a new session goes to servoy-b: the highest-scoring backend that takes new sessions' },
        ],
        candidates: [
          { id: 'servoy-b', state: 'up', sessions: 7, cap: 12, fits: true, score: 2.5 },
          { id: 'servoy-a', state: 'up', sessions: 3, cap: null, fits: true, score: 1.5 },
        ],
      };
    },
    explainPath(path, client) {
      calls.push(['explainPath', path, client]);
      return { path, normalised: '/servoy-admin/', rule: { prefix: '/servoy-admin/', kind: 'allow' as const }, verdict: 'denied' as const, reason: `${client} is not in the allow list: 403` };
    },
    async reload(): Promise<ReloadResult> {
      calls.push(['reload']);
      if (fake.reloadFails) {
        throw new AdminError('INVALID_CONFIG', 'the config file has problems; the balancer keeps its running config', [
          'backends[1].url: expected an http: or https: URL without a path, such as "http://10.0.0.11:8080"',
        ]);
      }
      return { added: ['servoy-c'], removed: [], updated: ['servoy-a'], settings: ['healthCheck'], needsRestart: ['listen.port'] };
    },
    listPartitions(offset, limit) {
      calls.push(['listPartitions', offset, limit]);
      throw new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")');
    },
    async movePartition(key, backend, drain) {
      calls.push(['movePartition', key, backend, drain]);
      throw new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")');
    },
    stateHealth() {
      return { kind: 'file', ok: true };
    },
    async metrics() {
      calls.push(['metrics']);
      return { contentType: fake.metricsSource.contentType, body: await fake.metricsSource.text() };
    },
  };
  return fake;
}

/** A logger that keeps what it was given, for assertions. */
export function memoryLogger(): AdminLogger & { lines: { level: string; args: unknown[] }[] } {
  const lines: { level: string; args: unknown[] }[] = [];
  const at = (level: string) => (...args: unknown[]): void => void lines.push({ level, args });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') } as AdminLogger & { lines: typeof lines };
}

/** The slice of a tap Test used here. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

/** startFakeAdmin runs a real AdminServer on 127.0.0.1 (random port) in front of a fake control. */
export async function startFakeAdmin(t: Teardown, options: Partial<Omit<AdminServerOptions, 'host' | 'port' | 'logger'>> = {}) {
  const control = createFakeControl();
  const logger = memoryLogger();
  const server = new AdminServer(control, { host: '127.0.0.1', port: 0, logger, ...options });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  return { control, logger, server, port, url: `http://127.0.0.1:${port}` };
}
