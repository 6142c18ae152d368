/**
 * Active health checks (SPEC "Backend states"): every backend gets `GET healthCheck.path`
 * every `interval` (±10% jitter, first probe at a random point of the first interval so a
 * pool of servers is not probed all at once). `fall` bad probes in a row take it down,
 * `rise` good ones bring it back. A probe answered 503 is Servoy's maintenance mode, not a
 * failure: the sink hears inMaintenance(), the streaks do not move toward down, and it is
 * not good either (from down, 503s never bring a server back). 503s alone for longer than
 * `maintenanceLimit` (drain.maxWait) count as down: a Tomcat whose webapp failed to start
 * answers 503 forever. Like HAProxy, a backend counts as up until its checks say
 * otherwise, and — as Traefik's checker — this class knows only a HealthSink and tells it
 * only when its verdict really flips.
 *
 * Probes use their own undici Agent and close their connection after each probe
 * (`Connection: close`, as HAProxy checks do): they never share (or wait behind) user
 * traffic's keep-alive connections, every probe also proves that a new connection can be
 * opened, and no stale idle socket can fail a probe falsely.
 *
 * Probes keep the cookies a backend sets (one jar per backend) and send them back, so
 * probing a Servoy page does not open a new server session every interval.
 */
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { parseDuration } from '../config/duration.js';
import type { Logger } from '../log.js';
import type { HealthSink } from './health-sink.js';

/** ActiveCheckSettings are the `healthCheck` config keys; durations as ms or "100ms"-style text. */
export interface ActiveCheckSettings {
  readonly path: string;
  readonly interval: number | string;
  readonly timeout: number | string;
  readonly rise: number;
  readonly fall: number;
  /** Healthy status codes: "200", "200-399", "200,302". */
  readonly expectStatus: string;
}

/** HealthTarget is one backend to probe: its id and base URL (any path is ignored). */
export interface HealthTarget {
  readonly id: string;
  readonly url: string;
}

/** ProbeReport is what one finished probe found, for metrics and tests (`onProbe`). */
export type ProbeReport =
  | { readonly id: string; readonly ok: boolean; readonly status: number; readonly ms: number }
  | { readonly id: string; readonly ok: false; readonly error: string; readonly ms: number };

/** ActiveCheckerOptions are the optional collaborators; `random` makes jitter deterministic in tests. */
export interface ActiveCheckerOptions {
  readonly logger?: Logger;
  readonly random?: () => number;
  /** Called after every probe that still counts (not after probes aborted by close or removal). */
  readonly onProbe?: (report: ProbeReport) => void;
  /** How long probes may answer only 503 before the backend counts as down (ms; read at each probe); default: never. */
  readonly maintenanceLimit?: () => number;
  /** Clock for maintenanceLimit; default Date.now. */
  readonly now?: () => number;
}

/** parseExpectStatus turns "200" / "200-399" / "200,302" into `status => matches`; throws on bad text. */
export function parseExpectStatus(spec: string): (status: number) => boolean {
  const ranges: Array<readonly [number, number]> = [];
  for (const raw of spec.split(',')) {
    const part = raw.trim();
    const match = /^(\d{3})(?:-(\d{3}))?$/.exec(part);
    if (!match) throw new Error(`expectStatus: "${part}" is not a status code or range such as "200" or "200-399"`);
    const low = Number(match[1]);
    const high = match[2] === undefined ? low : Number(match[2]);
    if (low < 100 || high > 599 || low > high) throw new Error(`expectStatus: "${part}" is not a range of HTTP status codes (100-599, low first)`);
    ranges.push([low, high]);
  }
  return (status) => {
    for (const [low, high] of ranges) if (status >= low && status <= high) return true;
    return false;
  };
}

/** Cookies kept per backend at most: a misbehaving backend cannot grow the jar without bound. */
const MAX_COOKIES = 32;
/** Body bytes read before a probe stops draining (the connection is closed anyway). */
const MAX_BODY_BYTES = 1 << 20;

interface Settings {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly expect: (status: number) => boolean;
}

interface Target {
  readonly id: string;
  /** Origin, e.g. "http://10.0.0.11:8080". */
  readonly origin: string;
  /** The verdict the sink was last told (starts up). */
  healthy: boolean;
  good: number;
  bad: number;
  readonly cookies: Map<string, string>;
  timer: NodeJS.Timeout | undefined;
  inflight: Promise<boolean> | undefined;
  controller: AbortController | undefined;
  stopped: boolean;
  /** When the current run of 503 answers began (ms, options.now), or undefined. */
  maintenanceSince: number | undefined;
}

type Outcome = { ok: boolean; status: number } | { ok: false; error: string };

/** ActiveHealthChecker probes every backend on a timer and reports up/down flips to a HealthSink. */
export class ActiveHealthChecker {
  #settings: Settings;
  readonly #sink: HealthSink;
  readonly #logger: Logger | undefined;
  readonly #random: () => number;
  readonly #onProbe: ((report: ProbeReport) => void) | undefined;
  readonly #maintenanceLimit: () => number;
  readonly #now: () => number;
  readonly #targets = new Map<string, Target>();
  readonly #agent: Agent;
  #started = false;
  #closed = false;

  constructor(settings: ActiveCheckSettings, sink: HealthSink, options: ActiveCheckerOptions = {}) {
    this.#settings = normalize(settings);
    this.#sink = sink;
    this.#logger = options.logger;
    this.#random = options.random ?? Math.random;
    this.#onProbe = options.onProbe;
    this.#maintenanceLimit = options.maintenanceLimit ?? (() => Infinity);
    this.#now = options.now ?? Date.now;
    this.#agent = new Agent({ connections: 2, pipelining: 1, connect: { timeout: this.#settings.timeoutMs } });
  }

  /** setTargets makes the probed set equal `backends` (call on every pool change); unchanged ones keep their streaks. */
  setTargets(backends: readonly HealthTarget[]): void {
    if (this.#closed) return;
    const wanted = new Set<string>();
    for (const backend of backends) {
      let origin: string;
      try {
        origin = new URL(backend.url).origin;
      } catch {
        this.#logger?.warn({ backend: backend.id, url: backend.url }, 'health check: backend URL is invalid; not probed');
        continue;
      }
      wanted.add(backend.id);
      const existing = this.#targets.get(backend.id);
      if (existing?.origin === origin) continue;
      // A changed URL is another server: fresh streaks and cookies, but the sink's verdict stands.
      if (existing) stop(existing);
      const target = newTarget(backend.id, origin, existing?.healthy ?? true);
      this.#targets.set(backend.id, target);
      if (this.#started) this.#schedule(target, this.#firstDelay());
    }
    for (const [id, target] of this.#targets) {
      if (wanted.has(id)) continue;
      stop(target);
      this.#targets.delete(id);
    }
  }

  /** updateSettings applies reloaded `healthCheck` keys from the next probe; a new interval reschedules waiting probes. */
  updateSettings(settings: ActiveCheckSettings): void {
    const next = normalize(settings);
    const intervalChanged = next.intervalMs !== this.#settings.intervalMs;
    this.#settings = next;
    if (!intervalChanged || !this.#started || this.#closed) return;
    for (const target of this.#targets.values()) {
      if (target.timer === undefined) continue; // a probe is in flight; it schedules the next one itself
      clearTimeout(target.timer);
      this.#schedule(target, this.#firstDelay());
    }
  }

  /** start begins probing; each backend's first probe comes at a random point within one interval. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    for (const target of this.#targets.values()) this.#schedule(target, this.#firstDelay());
  }

  /**
   * probeOnce probes a backend now (sharing a probe already in flight) and resolves true
   * when its last `rise` probes, this one included, were all good: the outlier detector's
   * way back in that still honours SPEC's "back up after rise good checks". The probe
   * counts in the streak like any other. False for an unknown backend or after close().
   */
  async probeOnce(id: string): Promise<boolean> {
    const target = this.#targets.get(id);
    if (target === undefined || this.#closed) return false;
    await this.#run(target);
    return !target.stopped && target.good >= this.#settings.rise;
  }

  /** isHealthy is the checker's own verdict for a backend (undefined when it is not a target). */
  isHealthy(id: string): boolean | undefined {
    return this.#targets.get(id)?.healthy;
  }

  /** close stops all timers, aborts probes in flight and closes the probe connections; final. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const target of this.#targets.values()) stop(target);
    this.#targets.clear();
    await this.#agent.destroy().catch(() => undefined);
  }

  #firstDelay(): number {
    return Math.floor(this.#random() * this.#settings.intervalMs);
  }

  #nextDelay(): number {
    return Math.max(1, Math.round(this.#settings.intervalMs * (0.9 + 0.2 * this.#random())));
  }

  #schedule(target: Target, delay: number): void {
    target.timer = setTimeout(() => {
      target.timer = undefined;
      void this.#run(target).then(() => {
        if (!target.stopped && !this.#closed && target.timer === undefined) this.#schedule(target, this.#nextDelay());
      });
    }, delay);
  }

  /** #run starts a probe unless one is in flight; resolves with whether it was good. */
  #run(target: Target): Promise<boolean> {
    target.inflight ??= this.#probe(target).then((outcome) => {
      target.inflight = undefined;
      if (!target.stopped && !this.#closed) {
        if ('status' in outcome && outcome.status === 503) this.#recordMaintenance(target);
        else this.#record(target, outcome.ok, 'status' in outcome ? String(outcome.status) : outcome.error);
      }
      return outcome.ok;
    });
    return target.inflight;
  }

  async #probe(target: Target): Promise<Outcome & { ms: number }> {
    const { path, timeoutMs, expect } = this.#settings;
    const controller = new AbortController();
    target.controller = controller;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const started = performance.now();
    let outcome: Outcome;
    try {
      const headers: Record<string, string> = { 'user-agent': 'servoy-lb-health-check' };
      if (target.cookies.size > 0) headers.cookie = [...target.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const res = await request(target.origin + path, {
        method: 'GET',
        headers,
        dispatcher: this.#agent,
        signal: controller.signal,
        reset: true,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      keepCookies(target.cookies, res.headers['set-cookie']);
      await res.body.dump({ limit: MAX_BODY_BYTES, signal: controller.signal });
      outcome = { ok: expect(res.statusCode), status: res.statusCode };
    } catch (err) {
      outcome = { ok: false, error: timedOut ? 'timeout' : errorCode(err) };
    } finally {
      clearTimeout(timer);
      if (target.controller === controller) target.controller = undefined;
    }
    const ms = Math.round((performance.now() - started) * 10) / 10;
    if (!target.stopped && !this.#closed) this.#report({ id: target.id, ms, ...outcome });
    return { ...outcome, ms };
  }

  /** A 503: maintenance while it lasts; see the file comment. */
  #recordMaintenance(target: Target): void {
    target.good = 0;
    const now = this.#now();
    target.maintenanceSince ??= now;
    if (now - target.maintenanceSince > this.#maintenanceLimit()) {
      if (target.healthy) this.#flip(target, false, 'health check answered 503 for longer than drain.maxWait (a failed application, not maintenance)');
      return;
    }
    if (!target.healthy || this.#sink.inMaintenance === undefined) return;
    try {
      this.#sink.inMaintenance(target.id);
    } catch (err) {
      this.#logger?.error({ err, backend: target.id }, 'health check: the health sink threw');
    }
  }

  #record(target: Target, ok: boolean, detail: string): void {
    target.maintenanceSince = undefined;
    const { rise, fall } = this.#settings;
    if (ok) {
      target.good++;
      target.bad = 0;
      if (!target.healthy && target.good >= rise) this.#flip(target, true, 'health check passed');
    } else {
      target.bad++;
      target.good = 0;
      if (target.healthy && target.bad >= fall) this.#flip(target, false, `health check failed: ${detail}`);
    }
  }

  #flip(target: Target, healthy: boolean, cause: string): void {
    target.healthy = healthy;
    try {
      this.#sink.setHealth(target.id, healthy, cause);
    } catch (err) {
      this.#logger?.error({ err, backend: target.id }, 'health check: the health sink threw');
    }
  }

  #report(report: ProbeReport): void {
    if (!report.ok) this.#logger?.debug(report, 'health check probe failed');
    if (this.#onProbe === undefined) return;
    try {
      this.#onProbe(report);
    } catch (err) {
      this.#logger?.error({ err, backend: report.id }, 'health check: onProbe threw');
    }
  }
}

function newTarget(id: string, origin: string, healthy: boolean): Target {
  return { id, origin, healthy, good: 0, bad: 0, cookies: new Map(), timer: undefined, inflight: undefined, controller: undefined, stopped: false, maintenanceSince: undefined };
}

function stop(target: Target): void {
  target.stopped = true;
  if (target.timer !== undefined) clearTimeout(target.timer);
  target.timer = undefined;
  target.controller?.abort();
}

function normalize(settings: ActiveCheckSettings): Settings {
  const intervalMs = parseDuration(settings.interval);
  const timeoutMs = parseDuration(settings.timeout);
  if (intervalMs === undefined || intervalMs < 1) throw new Error(`healthCheck.interval: "${settings.interval}" is not a positive duration`);
  if (timeoutMs === undefined || timeoutMs < 1) throw new Error(`healthCheck.timeout: "${settings.timeout}" is not a positive duration`);
  if (!settings.path.startsWith('/')) throw new Error(`healthCheck.path: "${settings.path}" must start with "/"`);
  if (!(settings.rise >= 1 && settings.fall >= 1)) throw new Error('healthCheck.rise and healthCheck.fall must be at least 1');
  return { path: settings.path, intervalMs, timeoutMs, rise: settings.rise, fall: settings.fall, expect: parseExpectStatus(settings.expectStatus) };
}

/**
 * keepCookies stores `name=value` of each Set-Cookie line in the jar and deletes cookies
 * set with `Max-Age<=0` or an `Expires` in the past. Path and Domain are ignored: the jar
 * belongs to one origin and is only sent to the one probe path.
 */
export function keepCookies(jar: Map<string, string>, setCookie: string | string[] | undefined): void {
  if (setCookie === undefined) return;
  for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (name === '') continue;
    if (expired(attributes)) {
      jar.delete(name);
    } else if (jar.has(name) || jar.size < MAX_COOKIES) {
      jar.set(name, value);
    }
  }
}

function expired(attributes: string[]): boolean {
  for (const attribute of attributes) {
    const eq = attribute.indexOf('=');
    if (eq < 0) continue;
    const key = attribute.slice(0, eq).trim().toLowerCase();
    const value = attribute.slice(eq + 1).trim();
    // Max-Age wins over Expires (RFC 6265 5.3 step 3).
    if (key === 'max-age' && /^-?\d+$/.test(value)) return Number(value) <= 0;
  }
  for (const attribute of attributes) {
    const eq = attribute.indexOf('=');
    if (eq < 0 || attribute.slice(0, eq).trim().toLowerCase() !== 'expires') continue;
    const at = Date.parse(attribute.slice(eq + 1).trim());
    if (Number.isFinite(at)) return at <= Date.now();
  }
  return false;
}

function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { code, name } = err as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && code !== '') return code;
    if (typeof name === 'string' && name !== '') return name;
  }
  return 'error';
}
