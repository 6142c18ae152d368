/**
 * WorkerReporter is a worker's ProxyObserver: what its proxy sees happen to forwarded
 * requests, gathered for the primary, which owns outlier detection, maintenance handling
 * and metrics. Outcomes are kept in order as runs (successes n > 0, failures n < 0), so the
 * primary can replay "N failures in a row" faithfully from a report of a few numbers;
 * latency as bucket counts per backend and outcome. A maintenance 503 is passed on at once.
 */
import { LATENCY_BUCKETS } from '../admin/metrics.js';
import type { ExchangeOutcome } from '../proxy/exchange-outcome.js';
import type { ProxyObserver } from '../proxy/proxy-server.js';
import type { SessionAccounting } from '../sessions/accounting.js';
import type { LatencyDelta, ToPrimary, WorkerReport } from './protocol.js';

/** WorkerReporter gathers one worker's observations between reports; see the file comment. */
export class WorkerReporter implements ProxyObserver {
  #outcomes = new Map<string, number[]>();
  #latency = new Map<string, { buckets: number[]; sum: number }>();

  constructor(
    private readonly send: (message: ToPrimary) => void,
    /** metrics.enabled: without it latency is not gathered. */
    public metrics: boolean,
  ) {}

  requestFinished(backendId: string, outcome: ExchangeOutcome, seconds: number): void {
    if (outcome === 'backend-error' || outcome === 'timeout') this.#run(backendId, -1);
    else if (outcome === 'ok') this.#run(backendId, 1);
    if (!this.metrics) return;
    const key = `${backendId}\n${outcome}`;
    let entry = this.#latency.get(key);
    if (entry === undefined) this.#latency.set(key, (entry = { buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), sum: 0 }));
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    entry.buckets[i]!++;
    entry.sum += seconds;
  }

  backendFailed(backendId: string): void {
    this.#run(backendId, -1);
  }

  backendInMaintenance(backendId: string): void {
    this.send({ type: 'maintenance', backend: backendId });
  }

  /** take builds the report of everything since the last one. */
  take(accounting: SessionAccounting, inFlight: number, partitionsSeen: string[]): WorkerReport {
    const counters: WorkerReport['counters'] = {};
    for (const id of accounting.backendIds()) counters[id] = { ...accounting.counters(id) };
    const latency: LatencyDelta[] = [];
    for (const [key, entry] of this.#latency) {
      const nl = key.indexOf('\n');
      latency.push({ backend: key.slice(0, nl), outcome: key.slice(nl + 1), buckets: entry.buckets, sum: entry.sum });
    }
    const report: WorkerReport = {
      type: 'report',
      counters,
      inFlight,
      outcomes: Object.fromEntries(this.#outcomes),
      latency,
      partitionSessions: accounting.takeChangedPartitions(),
      partitionsSeen,
      sessionChanges: accounting.takeChangedSessions(),
    };
    this.#outcomes = new Map();
    this.#latency = new Map();
    return report;
  }

  /** Adds one outcome (+1 success, -1 failure) to the backend's runs. */
  #run(backendId: string, sign: 1 | -1): void {
    let runs = this.#outcomes.get(backendId);
    if (runs === undefined) this.#outcomes.set(backendId, (runs = []));
    const last = runs.length - 1;
    if (last >= 0 && Math.sign(runs[last]!) === sign) runs[last]! += sign;
    else runs.push(sign);
  }
}
