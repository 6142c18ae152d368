/**
 * OutcomeRecorder is the ProxyObserver of the balancer: what the proxy (or, with
 * `--workers`, every worker's report) says about backends goes to passive health (outlier
 * detection), the maintenance backoff and the latency metrics. It only forwards; the
 * verdicts are the outlier detector's.
 */
import type { BalancerMetrics } from '../admin/metrics.js';
import type { OutlierDetector } from '../health/outlier-detector.js';
import type { Pool } from '../pool/pool.js';
import type { ExchangeOutcome } from '../proxy/exchange-outcome.js';
import type { ProxyObserver } from '../proxy/proxy-server.js';
import type { MaintenanceBackoff } from './maintenance-backoff.js';

/** OutcomeRecorderDeps are where outcomes go. */
export interface OutcomeRecorderDeps {
  readonly pool: Pool;
  readonly outlier: OutlierDetector;
  readonly maintenance: MaintenanceBackoff;
  readonly metrics: BalancerMetrics;
  /** metrics.enabled of the running config. */
  readonly metricsEnabled: () => boolean;
}

/** OutcomeRecorder forwards proxy outcomes; see the file comment. */
export class OutcomeRecorder implements ProxyObserver {
  constructor(private readonly deps: OutcomeRecorderDeps) {}

  requestFinished(backendId: string, outcome: ExchangeOutcome, seconds: number): void {
    if (outcome === 'backend-error' || outcome === 'timeout') this.deps.outlier.recordFailure(backendId, outcome);
    else if (outcome === 'ok') this.deps.outlier.recordSuccess(backendId);
    if (this.deps.metricsEnabled()) this.deps.metrics.observeRequest(backendId, seconds, outcome);
  }

  backendFailed(backendId: string): void {
    this.deps.outlier.recordFailure(backendId, 'connect');
  }

  backendInMaintenance(backendId: string): void {
    this.deps.maintenance.enter(backendId, 'answered a new session with 503 (Servoy maintenance mode)');
  }

  /**
   * recordOutcomes replays a worker's proxy outcomes for one backend into outlier
   * detection, in the order they happened: runs of successes (n > 0) and failures (n < 0).
   */
  recordOutcomes(backendId: string, runs: readonly number[]): void {
    if (!this.deps.pool.has(backendId)) return;
    for (const run of runs) {
      if (run > 0) this.deps.outlier.recordSuccess(backendId);
      else for (let i = 0; i < -run; i++) this.deps.outlier.recordFailure(backendId, 'proxy-error');
    }
  }
}
