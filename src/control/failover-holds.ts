/**
 * FailoverHolds is the HealthSink the active checker and the outlier detector write to: the
 * pool, plus affinity.failoverDelay. A backend that goes down after being up holds its
 * sessions for failoverDelay (they get 503, not a new server: Servoy takes a client back for
 * 60 s after a drop, so a short outage must not cost every user their client); the hold ends
 * when the delay passes or the backend is back. A probe's maintenance 503 goes to the
 * MaintenanceBackoff.
 */
import type { Logger } from 'pino';
import type { HealthSink } from '../health/health-sink.js';
import type { Pool } from '../pool/pool.js';
import type { MaintenanceBackoff } from './maintenance-backoff.js';

/** FailoverHoldsDeps are what ending a hold needs besides the pool. */
export interface FailoverHoldsDeps {
  readonly logger: Logger;
  /** affinity.failoverDelay of the running config (ms; 0: no hold). */
  readonly failoverDelay: () => number;
  readonly maintenance: MaintenanceBackoff;
  /** One health probe now: true when the backend answers well (ActiveHealthChecker.probeOnce). */
  readonly probe: (backendId: string) => Promise<boolean>;
  /** Ends an outlier ejection early (OutlierDetector.endEjection). */
  readonly endEjection: (backendId: string, cause: string) => void;
}

/** FailoverHolds writes health verdicts into the pool and runs the failoverDelay timers; see the file comment. */
export class FailoverHolds implements HealthSink {
  /** Per down backend: when affinity.failoverDelay ends and its held sessions are placed anew. */
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(
    private readonly pool: Pool,
    private readonly deps: FailoverHoldsDeps,
  ) {}

  /** setHealth takes the checks' verdict and starts or ends a hold; see the file comment. */
  setHealth(backendId: string, healthy: boolean, cause: string): void {
    const delay = this.deps.failoverDelay();
    const wasHealthy = this.pool.member(backendId)?.healthy;
    this.pool.setHealth(backendId, healthy, cause, delay > 0);
    if (healthy || wasHealthy === true) {
      clearTimeout(this.#timers.get(backendId));
      this.#timers.delete(backendId);
    }
    if (!healthy && wasHealthy === true && this.pool.member(backendId)?.holding === true) {
      this.deps.logger.info({ backend: backendId, failoverDelay: delay }, 'backend down: its sessions wait for it (503) for affinity.failoverDelay before they are placed anew');
      const timer = setTimeout(() => {
        this.#timers.delete(backendId);
        void this.#endHold(backendId);
      }, delay).unref();
      this.#timers.set(backendId, timer);
    }
  }

  /**
   * inMaintenance is the health checker's report of a probe answered 503 (Servoy
   * maintenance mode): the backend takes no new sessions for maintenanceBackoff.
   */
  inMaintenance(backendId: string): void {
    this.deps.maintenance.enter(backendId, 'health probe answered 503 (Servoy maintenance mode)');
  }

  /** close stops every hold timer (the balancer is closing). */
  close(): void {
    this.#closed = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /**
   * #endHold runs when failoverDelay has passed for a down backend. One probe first: a
   * server that is already back (its checks pass again, but an outlier ejection still holds
   * it out, or the next scheduled probe has not come yet) takes its users back instead of
   * losing them by a hair. Otherwise its sessions are placed anew from now on.
   */
  async #endHold(backendId: string): Promise<void> {
    const good = await this.deps.probe(backendId);
    if (this.#closed) return;
    if (good) this.deps.endEjection(backendId, 'ejection ended early: its health checks pass at the end of failoverDelay');
    const member = this.pool.member(backendId);
    if (member === undefined || member.healthy || !member.holding) return;
    if (this.pool.setHolding(backendId, false, 'failoverDelay passed while down')) {
      this.deps.logger.info({ backend: backendId }, 'failoverDelay passed while down: its sessions are placed anew');
    }
  }
}
