/**
 * LatencyHistogram is servoylb_request_duration_seconds (by backend and outcome) kept as
 * flat Float64Arrays, one per backend and outcome: the request path adds 1 to a bucket and
 * the seconds to a sum, and prom-client turns the arrays into series only when /metrics is
 * scraped (the metric's get()). prom-client's own Histogram hashed the label object on every
 * observe(), which cost more than the rest of the bookkeeping of a request
 * (bench/log-metrics.js). The same store takes workers' bucket deltas (add) with
 * `--workers`, so both modes print one way: le first, then backend and outcome, buckets
 * cumulative, then _sum and _count, as prom-client's Histogram printed them.
 */
import { LATENCY_BUCKETS } from './latency-buckets.js';

/** Slots of one backend-and-outcome array: the buckets (then +Inf), the sum, the count. */
const INF = LATENCY_BUCKETS.length;
const SUM = INF + 1;
const COUNT = INF + 2;
const SLOTS = INF + 3;

/** bucketIndex is the LATENCY_BUCKETS bucket a duration falls in (LATENCY_BUCKETS.length: +Inf). */
export function bucketIndex(seconds: number): number {
  let i = 0;
  while (i < INF && seconds > LATENCY_BUCKETS[i]!) i++;
  return i;
}

/** One sample as prom-client's Registry prints it. */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/** LatencyHistogram holds the counts; see the file comment. */
export class LatencyHistogram {
  /** Per backend: per outcome, its slots (in the order outcomes were first seen). */
  readonly #backends = new Map<string, Map<string, Float64Array>>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** observe counts one request of `seconds` in bucket `bucket` (bucketIndex(seconds)). */
  observe(backendId: string, outcome: string, bucket: number, seconds: number): void {
    const slots = this.#slots(backendId, outcome);
    slots[bucket]!++;
    slots[SUM]! += seconds;
    slots[COUNT]!++;
  }

  /** add adds bucket counts (per LATENCY_BUCKETS bucket, not cumulative, then +Inf) and their sum of seconds. */
  add(backendId: string, outcome: string, buckets: readonly number[], sum: number): void {
    const slots = this.#slots(backendId, outcome);
    for (let i = 0; i <= INF; i++) {
      const n = buckets[i] ?? 0;
      slots[i]! += n;
      slots[COUNT]! += n;
    }
    slots[SUM]! += sum;
  }

  /** forget drops a backend's series. */
  forget(backendId: string): void {
    this.#backends.delete(backendId);
  }

  /** metric is what Registry.registerMetric takes: the series are built when a scrape asks. */
  metric(): object {
    const { name, help } = this;
    const get = async () => ({ name, help, type: 'histogram', values: this.#samples(), aggregator: 'sum' });
    return { name, help, type: 'histogram', aggregator: 'sum', get, reset: () => this.#backends.clear() };
  }

  #slots(backendId: string, outcome: string): Float64Array {
    let outcomes = this.#backends.get(backendId);
    if (outcomes === undefined) this.#backends.set(backendId, (outcomes = new Map()));
    let slots = outcomes.get(outcome);
    if (slots === undefined) outcomes.set(outcome, (slots = new Float64Array(SLOTS)));
    return slots;
  }

  #samples(): Sample[] {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const [backend, outcomes] of this.#backends) {
      for (const [outcome, slots] of outcomes) {
        let cumulative = 0;
        for (let i = 0; i < INF; i++) {
          cumulative += slots[i]!;
          values.push({ metricName: bucket, labels: { le: LATENCY_BUCKETS[i]!, backend, outcome }, value: cumulative });
        }
        values.push({ metricName: bucket, labels: { le: '+Inf', backend, outcome }, value: slots[COUNT]! });
        values.push({ metricName: `${this.name}_sum`, labels: { backend, outcome }, value: slots[SUM]! });
        values.push({ metricName: `${this.name}_count`, labels: { backend, outcome }, value: slots[COUNT]! });
      }
    }
    return values;
  }
}
