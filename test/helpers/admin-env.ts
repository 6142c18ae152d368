/**
 * The shared environment of the admin-*.test.ts integration tests: the real CLI (spawned
 * from dist/) in front of simulated Servoy servers, driven through its admin API over HTTP,
 * with browser-like clients. Each of those files used to carry its own copy of these
 * helpers; they live here so a fix (a timeout, a config default) is made once.
 *
 * Reused rather than copied: waitFor (./lb.js), spawnBalancer (./processes.js).
 * Not reused on purpose: lbConfig and startBalancer (./lb.js). lbConfig is async, writes
 * admin.port and merges `extra` shallowly (a `{ healthCheck: { interval } }` override
 * would drop `path`); startBalancer allows 60 s and takes no SpawnOptions (the token test
 * needs `env`). The admin tests depend on the one-level-deep merge and the 15 s start.
 */
import type { Test } from 'tap';
import { request } from 'undici';
import { BrowserClient } from './browser.js';
import { waitFor } from './lb.js';
import { spawnBalancer, type BalancerProcess, type SpawnOptions, type TestLike } from './processes.js';

/**
 * The routes (= backend ids) of the three simulators every admin test starts; also the
 * routes pinClients fills by default, so both must be the same list.
 */
export const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];

/** What one admin API call answered: tests assert on the status and on either form of the body. */
export interface ApiAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON (a 401 page, /metrics). */
  json: any;
}

/**
 * One admin API call over HTTP (its own connection, so a restarted balancer never sees a
 * stale one). `token` sends `Authorization: Bearer`, `body` is sent as JSON.
 */
export async function api(lb: BalancerProcess, method: string, path: string, opts: { token?: string; body?: unknown } = {}): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  return call(`${lb.adminUrl!}${path}`, method, headers, body);
}

/** One HTTP call to any URL (its own connection), answered as an ApiAnswer: e.g. listen.healthPath on the traffic port. */
export async function call(url: string, method = 'GET', headers: Record<string, string> = {}, body?: string): Promise<ApiAnswer> {
  const res = await request(url, { method: method as 'GET', headers, body, reset: true });
  const text = await res.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/**
 * The GET /api/backends row of backend `id` (undefined if it is not listed): what the
 * balancer decided about it, the thing most assertions are about. Throws on a non-200.
 */
export async function row(lb: BalancerProcess, id: string): Promise<any> {
  const res = await api(lb, 'GET', '/api/backends');
  if (res.status !== 200) throw new Error(`GET /api/backends answered ${res.status}: ${res.text}`);
  return (res.json.backends as any[]).find((b) => b.id === id);
}

/** Waits (bounded, polling every 50 ms) until backend `id` shows `state`: state changes are asynchronous. */
export async function waitState(lb: BalancerProcess, id: string, state: string, timeoutMs: number): Promise<void> {
  await waitFor(async () => (await row(lb, id))?.state === state, timeoutMs, `${id} ${state}`, 50);
}

/** Whether `v` is a plain object: the sections config() merges instead of replacing. */
export function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A loopback config with short intervals, so state changes happen within a test's time;
 * `overrides` are merged one level deep (`{ healthCheck: { rise: 1 } }` keeps the rest of
 * healthCheck), a non-object override replaces the section.
 */
export function config(backends: object[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1' },
    backends,
    affinity: { sessionIdle: '2s', maintenanceBackoff: '1s' },
    // timeout 1s, not 150ms: on a loaded test machine (load 12+ on 2 CPUs) 150 ms probes of the
    // in-process simulators time out and take healthy backends down at random.
    healthCheck: { path: '/', interval: '200ms', timeout: '1s', rise: 2, fall: 2 },
    outlier: { consecutiveFailures: 3, ejectFor: '1s' },
    log: { access: false },
  };
  for (const [k, v] of Object.entries(overrides)) base[k] = isPlain(v) && isPlain(base[k]) ? { ...base[k], ...v } : v;
  return base;
}

/** A new browser-like client (its own cookie jar) for `url`, closed at the test's teardown. */
export function browser(t: TestLike, url: string): BrowserClient {
  const b = new BrowserClient(url);
  t.teardown(() => b.close());
  return b;
}

/**
 * New browsers until every route has `perBackend` of them (all 127.0.0.1: bounded load
 * spreads them), so a test has sessions on the backend it acts on. `routes` defaults to
 * ROUTES; throws if a route cannot be filled.
 */
export async function pinClients(t: Test, url: string, perBackend: number, routes = ROUTES): Promise<Map<string, BrowserClient[]>> {
  const by = new Map<string, BrowserClient[]>(routes.map((r) => [r, []]));
  for (let i = 0; i < 20 * perBackend * routes.length && [...by.values()].some((l) => l.length < perBackend); i++) {
    const b = browser(t, url);
    const res = await b.get('/api/whoami');
    if (res.status !== 200) throw new Error(`new client got ${res.status}`);
    by.get(res.json().server)?.push(b);
  }
  for (const [r, l] of by) if (l.length < perBackend) throw new Error(`could not pin ${perBackend} clients on ${r}`);
  return by;
}

/** Whether a log line so far matches `re`, without waiting: for "was (not) logged" checks. */
export const logged = (lb: BalancerProcess, re: RegExp): boolean => lb.logs().some((l) => re.test(l));

/** Passes once a matching log line arrives (bounded): stdout may lag behind an API answer. */
export async function seeLog(t: Test, lb: BalancerProcess, re: RegExp, what: string): Promise<void> {
  const line = await lb.waitForLog(re, 15_000).catch(() => undefined);
  t.ok(line !== undefined, what);
}

/**
 * The `time` (ms, the balancer's clock) of the first log line matching, waiting for it
 * (bounded): durations measured on the balancer's clock do not include test-side lag.
 */
export async function logTime(lb: BalancerProcess, re: RegExp): Promise<number> {
  return (JSON.parse(await lb.waitForLog(re, 15_000)) as { time: number }).time;
}

/** spawnBalancer, and when the test fails, its state changes and warnings on stderr (for diagnosis). */
export async function start(t: Test, cfg: object, opts: SpawnOptions = {}): Promise<BalancerProcess> {
  const lb = await spawnBalancer(t, cfg, opts);
  t.teardown(() => {
    if (t.passing()) return;
    const lines = lb.logs().filter((l) => /state changed|"level":[45]0|ejected|refused/.test(l));
    console.error(`--- balancer ${lb.url} (state changes and warnings) ---\n${lines.join('\n')}`);
  });
  return lb;
}

/**
 * Polls (every 200 ms) for `ms` and fails the test if the backend leaves `state` meanwhile:
 * for "it stays draining" claims that a single look cannot prove.
 */
export async function holdsState(t: Test, lb: BalancerProcess, id: string, state: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const now = (await row(lb, id)).state;
    if (now !== state) {
      t.fail(`${id} left ${state} for ${now}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  t.pass(`${id} stayed ${state} for ${ms} ms`);
}

/** Every partition the balancer lists (GET /api/partitions), by key: what partition tests assert on. */
export async function partitionRows(lb: BalancerProcess): Promise<Map<string, any>> {
  const res = await api(lb, 'GET', '/api/partitions?limit=10000');
  if (res.status !== 200) throw new Error(`GET /api/partitions answered ${res.status}: ${res.text}`);
  return new Map((res.json.partitions as any[]).map((p) => [p.key, p]));
}
