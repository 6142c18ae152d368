/**
 * DashboardData is what the primary records for the dashboard beyond the pool's current
 * state: since when each backend is in its state, the active checker's last probe of each,
 * the events (state changes and admin actions) and the time series. The Balancer owns one
 * and feeds it (pool 'change' events, the checker's onProbe, a sampling timer); keeping it
 * here leaves balancer.ts about running the balancer.
 */
import type { Pool, PoolChange } from '../pool/pool.js';
import type { ProbeReport } from '../health/active-checker.js';
import type { SessionTotals } from '../sessions/accounting.js';
import type { BackendStatus, LastCheck } from './control.js';
import { EventLog, type AdminEvent } from './events.js';
import { SeriesStore, type CounterSample } from './series.js';

/** How often the series is sampled (ms) and how many samples it keeps: 15 minutes. */
export const SERIES_STEP_MS = 2000;
export const SERIES_POINTS = 450;

/** DashboardData holds the dashboard's history; see the file comment. */
export class DashboardData {
  readonly events = new EventLog();
  readonly series = new SeriesStore(SERIES_STEP_MS, SERIES_POINTS);
  readonly #since = new Map<string, number>();
  readonly #lastCheck = new Map<string, LastCheck>();
  readonly #startedAt: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly totals: () => SessionTotals,
    /** The recent latency p95 of a backend (ms), null without requests or with metrics off. */
    private readonly p95Ms: (backendId: string) => number | null,
    private readonly now: () => number = Date.now,
  ) {
    this.#startedAt = now();
    pool.on('change', (change) => this.#onChange(change));
  }

  /** start samples the series every SERIES_STEP_MS (first sample now); the timer does not keep the process alive. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.sample();
    this.#timer = setInterval(() => this.sample(), SERIES_STEP_MS).unref();
  }

  /** stop ends the sampling. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** sample takes one point of every backend's counters now. */
  sample(): void {
    const totals = this.totals();
    const rows = new Map<string, CounterSample>();
    for (const m of this.pool.members()) rows.set(m.config.id, totals.counters(m.config.id));
    this.series.sample(this.now(), rows);
  }

  /** probed keeps an active health probe's result (ActiveCheckerOptions.onProbe). */
  probed(report: ProbeReport): void {
    const at = new Date(this.now()).toISOString();
    const ms = Math.round(report.ms);
    this.#lastCheck.set(report.id, 'error' in report ? { ok: false, error: report.error, ms, at } : { ok: report.ok, status: report.status, ms, at });
  }

  /** adminAction records an admin call that succeeded. */
  adminAction(action: { backend: string | null; what: string; who: string; from: string | null; to: string | null }): void {
    this.events.add({ time: new Date(this.now()).toISOString(), backend: action.backend, from: action.from, to: action.to, cause: `admin ${action.what} by ${action.who}`, kind: 'admin', who: action.who });
  }

  /** decorate adds stateSince, lastCheck and p95Ms to a status row. */
  decorate(row: BackendStatus): BackendStatus {
    return { ...row, stateSince: new Date(this.#since.get(row.id) ?? this.#startedAt).toISOString(), lastCheck: this.#lastCheck.get(row.id) ?? null, p95Ms: this.p95Ms(row.id) };
  }

  #onChange(change: PoolChange): void {
    if (change.from === change.to) return;
    const now = this.now();
    if (change.to === 'absent') {
      this.#since.delete(change.backendId);
      this.#lastCheck.delete(change.backendId);
    } else this.#since.set(change.backendId, now);
    const event: AdminEvent = { time: new Date(now).toISOString(), backend: change.backendId, from: change.from, to: change.to, cause: change.cause, kind: 'state' };
    this.events.add(event);
  }
}
