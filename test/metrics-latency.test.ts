/**
 * The latency histogram kept as flat arrays (LatencyHistogram, behind BalancerMetrics),
 * without sockets: the exposition it prints is the one prom-client's own Histogram printed
 * for the same observations (the implementation it replaced is the oracle), bucket
 * boundaries included; forgetting a backend drops its series; the dashboard's window sees
 * the same observations.
 */
import t from 'tap';
import { Histogram, Registry } from 'prom-client';
import { BalancerMetrics, LATENCY_BUCKETS } from '../src/admin/metrics.js';
import { bucketIndex, LatencyHistogram } from '../src/admin/latency-histogram.js';

const NAME = 'servoylb_request_duration_seconds';

/** The request_duration lines of an exposition. */
function durationLines(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(NAME));
}

t.test('bucketIndex: a value on a bound belongs to that bound (le), past the last to +Inf', async (t) => {
  const table: [number, number][] = [
    [0, 0],
    [0.005, 0],
    [0.0051, 1],
    [0.01, 1],
    [1, 7],
    [1.0001, 8],
    [300, LATENCY_BUCKETS.length - 1],
    [300.1, LATENCY_BUCKETS.length],
    [Infinity, LATENCY_BUCKETS.length],
  ];
  for (const [seconds, index] of table) t.equal(bucketIndex(seconds), index, String(seconds));
});

t.test('observed latency prints as prom-client\'s Histogram did for the same observations', async (t) => {
  const registry = new Registry();
  const oracle = new Histogram({ name: NAME, help: 'h', labelNames: ['backend', 'outcome'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const metrics = new BalancerMetrics(() => []);
  const observations: [string, number, string][] = [];
  let x = 7;
  for (let i = 0; i < 2000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const seconds = [0.001, 0.005, 0.02, 0.3, 1, 2.5, 59.9, 300, 301][x % 9]! * (1 + (x % 5) / 1e3);
    observations.push([['a', 'b', 'c'][x % 3]!, seconds, ['ok', 'timeout', 'client-abort'][(x >> 3) % 3]!]);
  }
  observations.push(['d', 0.01, 'ok'], ['d', 300, 'ok']);
  for (const [backend, seconds, outcome] of observations) {
    oracle.observe({ backend, outcome }, seconds);
    metrics.observeRequest(backend, seconds, outcome);
  }
  const want = durationLines(await registry.metrics()).sort();
  const got = durationLines(await metrics.text()).sort();
  t.ok(want.length > 100);
  t.same(got, want, 'the same series, labels and values');
  t.ok(metrics.recent.p95Ms('a') !== null, 'the dashboard window saw them too');

  metrics.forgetBackend('a');
  const after = await metrics.text();
  t.notMatch(after, 'backend="a"', 'a forgotten backend leaves the scrape');
  t.match(after, 'backend="b"');
  t.equal(metrics.recent.p95Ms('a'), null);
});

t.test('no observation yet: only HELP and TYPE, as an empty labelled Histogram', async (t) => {
  const text = await new BalancerMetrics(() => []).text();
  t.match(text, `# TYPE ${NAME} histogram`);
  t.same(durationLines(text), []);
});

t.test('LatencyHistogram: add() (worker deltas) and observe() count into the same arrays; reset clears', async (t) => {
  const h = new LatencyHistogram(NAME, 'help');
  h.observe('a', 'ok', bucketIndex(0.02), 0.02);
  const deltas = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  deltas[2] = 3;
  h.add('a', 'ok', deltas, 0.06);
  h.add('a', 'ok', [1], 0.001);
  const metric = h.metric() as { get(): Promise<{ values: { metricName: string; labels: Record<string, unknown>; value: number }[] }>; reset(): void };
  const { values } = await metric.get();
  const count = values.find((v) => v.metricName === `${NAME}_count`)!;
  t.equal(count.value, 5);
  t.equal(values.find((v) => v.metricName === `${NAME}_bucket` && v.labels.le === 0.025)!.value, 5, 'cumulative');
  t.equal(values.find((v) => v.metricName === `${NAME}_bucket` && v.labels.le === 0.005)!.value, 1);
  t.equal(Math.round(values.find((v) => v.metricName === `${NAME}_sum`)!.value * 1000), 81);
  metric.reset();
  t.same((await metric.get()).values, []);
});
