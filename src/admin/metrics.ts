/**
 * Prometheus metrics of the balancer (served on the admin API at GET /metrics).
 *
 * Per-backend values (sessions, websockets, state, request and byte counters) are read
 * from the balancer's own BackendStatus rows at scrape time, so there is one source of
 * truth and nothing to keep in step on the request path; a removed backend disappears from
 * the next scrape. Only request latency is observed as it happens (observeRequest), since
 * a histogram cannot be rebuilt from totals: into flat arrays (LatencyHistogram) that
 * become series only when a scrape asks, so a request pays a few array stores. Everything lives in a private Registry, so
 * several balancers (tests, workers) in one process never share or clash on metrics.
 *
 * With `--workers N` the metrics are served by the primary and aggregated there from the
 * workers' periodic reports rather than with prom-client's AggregatorRegistry: the
 * per-backend rows are already the primary's (summed) status rows, and latency arrives as
 * bucket deltas (addLatency) that are added to a merged histogram. So a scrape needs no
 * round trip to every worker (none can hang or fail it), and a worker that dies or is
 * replaced never makes a counter go backwards. Process metrics (CPU, memory, event loop)
 * are the primary's own.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { BackendStatus } from './control.js';
import type { BackendState } from '../pool/snapshot.js';
import { bucketIndex, LatencyHistogram } from './latency-histogram.js';
import { LatencyWindow } from './latency-window.js';

const STATES: readonly BackendState[] = ['up', 'draining', 'drained', 'maintenance', 'disabled', 'down'];

export { LATENCY_BUCKETS } from './latency-buckets.js';

/**
 * Kind label used for backends whose errors are not broken down (BackendStatus without
 * errorsByKind).
 */
export const UNCLASSIFIED_ERRORS = 'all';

/** BalancerMetricsOptions say where latency comes from and what else to show. */
export interface BalancerMetricsOptions {
  /** 'observed' (default): observeRequest() per request; 'merged': addLatency() with workers' bucket deltas. */
  readonly latency?: 'observed' | 'merged';
  /** With `--workers`: live worker processes, restarts so far, and workers not yet up to date with the primary. */
  readonly workers?: () => { alive: number; restarts: number; changes: number; behind: number };
  /** HTTP requests being served now (with `--workers`: as last reported by the workers). */
  readonly inFlight?: () => number;
}

const DURATION_NAME = 'servoylb_request_duration_seconds';
const DURATION_HELP = 'Time from receiving a request to the end of its answer, by backend and outcome.';

/** BalancerMetrics owns the registry behind GET /metrics; see the file comment. */
export class BalancerMetrics {
  readonly registry = new Registry();
  /** The recent latency per backend, for the dashboard's p95 (fed by the same observations as the histogram). */
  readonly recent = new LatencyWindow();
  /** The latency histogram's counts; fed by observeRequest ('observed') or addLatency ('merged'). */
  readonly #latency = new LatencyHistogram(DURATION_NAME, DURATION_HELP);
  /** 'observed': observeRequest counts in the histogram (else only in `recent`). */
  readonly #observed: boolean;

  constructor(source: () => readonly BackendStatus[], options: BalancerMetricsOptions = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'servoylb_' });

    /** A metric whose series are all rebuilt from the source at each scrape. */
    const fromSource = <L extends string>(
      Kind: typeof Gauge<L> | typeof Counter<L>,
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (row: BackendStatus, set: (labels: Record<L, string>, value: number) => void) => void,
    ): void => {
      new Kind({
        name,
        help,
        labelNames,
        registers,
        collect(this: Gauge<L> | Counter<L>) {
          this.reset();
          const set = (labels: Record<L, string>, value: number): void => {
            if (this instanceof Gauge) this.set(labels, value);
            else this.inc(labels, value);
          };
          for (const row of source()) fill(row, set);
        },
      });
    };

    fromSource(Gauge, 'servoylb_backend_sessions', 'Active sessions pinned to the backend.', ['backend'], (b, set) => set({ backend: b.id }, b.sessions));
    fromSource(Gauge, 'servoylb_backend_websockets', 'Open WebSockets tunnelled to the backend.', ['backend'], (b, set) => set({ backend: b.id }, b.websockets));
    fromSource(Gauge, 'servoylb_backend_up', '1 while the backend passes its health checks, else 0.', ['backend'], (b, set) => set({ backend: b.id }, b.health === 'up' ? 1 : 0));
    fromSource(Gauge, 'servoylb_backend_weight', 'Configured weight of the backend.', ['backend'], (b, set) => set({ backend: b.id }, b.weight));
    fromSource(Gauge, 'servoylb_backend_state', 'Current state of the backend: 1 for the state it is in, 0 for the others.', ['backend', 'state'], (b, set) => {
      for (const state of STATES) set({ backend: b.id, state }, b.state === state ? 1 : 0);
    });
    fromSource(Counter, 'servoylb_backend_requests_total', 'Requests sent to the backend.', ['backend'], (b, set) => set({ backend: b.id }, b.requests));
    fromSource(Counter, 'servoylb_backend_errors_total', 'Failed requests to the backend (refused, timed out, broken), by kind.', ['backend', 'kind'], (b, set) => {
      const kinds = b.errorsByKind ?? { [UNCLASSIFIED_ERRORS]: b.errors };
      for (const [kind, count] of Object.entries(kinds)) set({ backend: b.id, kind }, count);
    });
    fromSource(Counter, 'servoylb_backend_client_aborts_total', 'Requests to the backend that the client abandoned before the answer was complete.', ['backend'], (b, set) => set({ backend: b.id }, b.clientAborts));
    fromSource(Counter, 'servoylb_backend_received_bytes_total', 'Bytes received from clients and sent to the backend.', ['backend'], (b, set) => set({ backend: b.id }, b.bytesIn));
    fromSource(Counter, 'servoylb_backend_sent_bytes_total', 'Bytes received from the backend and sent to clients.', ['backend'], (b, set) => set({ backend: b.id }, b.bytesOut));

    this.#observed = options.latency !== 'merged';
    this.registry.registerMetric(this.#latency.metric() as never);
    const inFlight = options.inFlight;
    if (inFlight !== undefined) {
      new Gauge({ name: 'servoylb_requests_in_flight', help: 'HTTP requests being served now.', registers, collect(this: Gauge) { this.set(inFlight()); } });
    }
    const workers = options.workers;
    if (workers !== undefined) {
      new Gauge({ name: 'servoylb_workers', help: 'Worker processes serving client traffic now.', registers, collect(this: Gauge) { this.set(workers().alive); } });
      new Counter({ name: 'servoylb_worker_restarts_total', help: 'Worker processes that died and were replaced.', registers, collect(this: Counter) { this.reset(); this.inc(workers().restarts); } });
      new Counter({ name: 'servoylb_worker_changes_total', help: 'Pool, settings, session and partition changes pushed to the worker processes.', registers, collect(this: Counter) { this.reset(); this.inc(workers().changes); } });
      new Gauge({ name: 'servoylb_workers_behind', help: 'Worker processes that have not yet applied the latest pool, settings, session or partition change.', registers, collect(this: Gauge) { this.set(workers().behind); } });
    }
  }

  /**
   * addLatency adds a worker's latency observations for one backend and outcome since its
   * last report: `buckets` counts per LATENCY_BUCKETS bucket (not cumulative) plus one for
   * +Inf, `sum` their total seconds.
   */
  addLatency(backendId: string, outcome: string, buckets: readonly number[], sum: number): void {
    this.recent.add(backendId, buckets);
    this.#latency.add(backendId, outcome, buckets, sum);
  }

  /**
   * observeRequest records one finished proxied request (called by the proxy, once per
   * request): one bucket search, then a few stores into the dashboard's window and the
   * histogram's arrays.
   */
  observeRequest(backendId: string, seconds: number, outcome: string): void {
    const bucket = bucketIndex(seconds);
    this.recent.observeBucket(backendId, bucket);
    if (this.#observed) this.#latency.observe(backendId, outcome, bucket, seconds);
  }

  /** forgetBackend drops the latency series of a removed backend, so scrapes stop showing it. */
  forgetBackend(backendId: string): void {
    this.#latency.forget(backendId);
    this.recent.forget(backendId);
  }

  /** text renders the Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** contentType is the Content-Type header that goes with text(). */
  get contentType(): string {
    return this.registry.contentType;
  }
}
