/**
 * Outlier detection (SPEC "Backend states": down after `outlier.consecutiveFailures`
 * proxy errors): consecutive failures eject, a success resets the streak, and when
 * `ejectFor` has passed the probe callback decides re-admission. A fake clock drives
 * the unit cases; the last case uses the real ActiveHealthChecker.probeOnce against a
 * simulated Servoy server.
 */
import t from 'tap';
import { startServoySim } from '../examples/servoy-sim.js';
import { ActiveHealthChecker } from '../src/health/active-checker.js';
import type { HealthSink } from '../src/health/health-sink.js';
import { OutlierDetector, type OutlierDetectorOptions, type OutlierTimers } from '../src/health/outlier-detector.js';
import { waitFor } from './helpers/lb.js';

interface Flip {
  id: string;
  healthy: boolean;
  cause: string;
}

/** A fake clock: timers fire only when the test advances time. */
class FakeClock implements OutlierTimers {
  now = 1_000_000;
  readonly #pending = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const handle = this.#next++;
    this.#pending.set(handle, { at: this.now + ms, fn });
    return handle;
  }
  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }
  get pending(): number {
    return this.#pending.size;
  }
  /** Moves time forward, firing due timers in order, and lets promise callbacks run. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.#pending].filter(([, t]) => t.at <= until).sort((x, y) => x[1].at - y[1].at)[0];
      if (due === undefined) break;
      this.#pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await settle();
    }
    this.now = until;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function setup(options: Partial<OutlierDetectorOptions> = {}, consecutiveFailures = 3) {
  const flips: Flip[] = [];
  const sink: HealthSink = { setHealth: (id, healthy, cause) => void flips.push({ id, healthy, cause }) };
  const clock = new FakeClock();
  const detector = new OutlierDetector({ consecutiveFailures, ejectFor: '30s' }, sink, { now: () => clock.now, timers: clock, ...options });
  return { flips, clock, detector };
}

const ejectionCases: { desc: string; events: string; ejected: boolean }[] = [
  { desc: 'three failures in a row eject', events: 'FFF', ejected: true },
  { desc: 'two failures do not', events: 'FF', ejected: false },
  { desc: 'a success resets the streak', events: 'FFSFF', ejected: false },
  { desc: 'a new streak after a success ejects', events: 'FFSFFF', ejected: true },
  { desc: 'successes alone do nothing', events: 'SSSS', ejected: false },
];

for (const c of ejectionCases) {
  t.test(c.desc, async (t) => {
    const { flips, detector } = setup();
    for (const e of c.events) e === 'F' ? detector.recordFailure('a', 'refused') : detector.recordSuccess('a');
    t.equal(detector.isEjected('a'), c.ejected);
    t.same(flips, c.ejected ? [{ id: 'a', healthy: false, cause: 'ejected after 3 consecutive proxy errors' }] : []);
    t.equal(detector.isEjected('b'), false, 'other backends unaffected');
  });
}

t.test('failures and successes while ejected change nothing', async (t) => {
  const { flips, clock, detector } = setup();
  for (let i = 0; i < 3; i++) detector.recordFailure('a', 'timeout');
  t.equal(detector.ejectedUntil('a'), clock.now + 30_000);
  for (let i = 0; i < 10; i++) detector.recordFailure('a', 'reset');
  detector.recordSuccess('a');
  t.equal(flips.length, 1, 'reported once');
  t.equal(detector.isEjected('a'), true, 'a success does not end an ejection');
});

t.test('after ejectFor the probe decides: bad keeps it out another ejectFor, good re-admits', async (t) => {
  const answers = [false, true];
  const asked: string[] = [];
  const { flips, clock, detector } = setup({
    probe: async (id) => {
      asked.push(id);
      return answers.shift() ?? true;
    },
  });
  for (let i = 0; i < 3; i++) detector.recordFailure('a', 'bad-response');
  await clock.advance(29_999);
  t.same(asked, [], 'not asked before ejectFor');
  await clock.advance(1);
  t.same(asked, ['a'], 'asked when ejectFor passed');
  t.equal(detector.isEjected('a'), true, 'bad probe: still ejected');
  t.equal(flips.length, 1, 'sink not told');
  t.equal(detector.ejectedUntil('a'), clock.now + 30_000, 'another ejectFor');

  await clock.advance(30_000);
  t.same(asked, ['a', 'a']);
  t.equal(detector.isEjected('a'), false, 'good probe: re-admitted');
  t.same(flips[1], { id: 'a', healthy: true, cause: 'ejection ended' });
  t.equal(clock.pending, 0, 'no timer left');

  detector.recordFailure('a', 'refused');
  detector.recordFailure('a', 'refused');
  t.equal(detector.isEjected('a'), false, 'the streak starts again from zero');
  detector.recordFailure('a', 'refused');
  t.equal(detector.isEjected('a'), true);
});

t.test('a probe that throws keeps the backend ejected', async (t) => {
  const { flips, clock, detector } = setup({ probe: async () => Promise.reject(new Error('boom')) });
  for (let i = 0; i < 3; i++) detector.recordFailure('a', 'refused');
  await clock.advance(30_000);
  t.equal(detector.isEjected('a'), true);
  t.equal(flips.length, 1);
  t.equal(clock.pending, 1, 're-armed');
});

t.test('without a probe the ejection simply ends after ejectFor', async (t) => {
  const { flips, clock, detector } = setup();
  for (let i = 0; i < 3; i++) detector.recordFailure('a', 'refused');
  await clock.advance(30_000);
  t.equal(detector.isEjected('a'), false);
  t.same(flips.map((f) => f.healthy), [false, true]);
});

t.test('forget and close drop timers and ignore late probe answers', async (t) => {
  let release: (good: boolean) => void = () => undefined;
  const { flips, clock, detector } = setup({ probe: () => new Promise<boolean>((resolve) => (release = resolve)) });
  for (let i = 0; i < 3; i++) detector.recordFailure('a', 'refused');
  for (let i = 0; i < 3; i++) detector.recordFailure('b', 'refused');
  await clock.advance(30_000); // both probes pending
  detector.forget('a');
  release(true);
  await settle();
  t.equal(flips.filter((f) => f.id === 'a').length, 1, 'forgotten backend: late answer ignored');
  t.equal(detector.isEjected('a'), false);

  detector.recordFailure('c', 'refused');
  detector.close();
  t.equal(clock.pending, 0, 'close clears every timer');
  detector.recordFailure('c', 'refused');
  detector.recordFailure('c', 'refused');
  t.equal(flips.filter((f) => f.id === 'c').length, 0, 'closed: records ignored');
});

t.test('updateSettings changes the threshold and the next ejection period', async (t) => {
  const { clock, detector } = setup();
  detector.updateSettings({ consecutiveFailures: 1, ejectFor: 500 });
  detector.recordFailure('a', 'refused');
  t.equal(detector.ejectedUntil('a'), clock.now + 500);
  t.throws(() => detector.updateSettings({ consecutiveFailures: 0, ejectFor: 500 }), /consecutiveFailures/);
  t.throws(() => detector.updateSettings({ consecutiveFailures: 1, ejectFor: 'soon' }), /ejectFor/);
});

t.test('with the active checker: re-admitted only once health checks pass', async (t) => {
  const sim = await startServoySim({ route: 'a' });
  t.teardown(() => sim.close());
  const flips: Flip[] = [];
  const sink: HealthSink = { setHealth: (id, healthy, cause) => void flips.push({ id, healthy, cause }) };
  const checker = new ActiveHealthChecker({ path: '/', interval: '10s', timeout: '200ms', rise: 1, fall: 1, expectStatus: '200' }, sink);
  t.teardown(() => checker.close());
  checker.setTargets([{ id: 'a', url: sim.url }]);
  let probes = 0;
  const detector = new OutlierDetector({ consecutiveFailures: 2, ejectFor: '50ms' }, sink, {
    probe: (id) => {
      probes++;
      return checker.probeOnce(id);
    },
  });
  t.teardown(() => detector.close());

  sim.setHealthy(false);
  detector.recordFailure('a', 'reset');
  detector.recordFailure('a', 'reset');
  t.same(flips, [{ id: 'a', healthy: false, cause: 'ejected after 2 consecutive proxy errors' }]);
  await waitFor(() => probes >= 2, 3000, 'two re-admission probes');
  t.equal(detector.isEjected('a'), true, 'still ejected while /health fails');
  sim.setHealthy(true);
  await waitFor(() => !detector.isEjected('a'), 3000, 're-admission');
  t.same(flips.at(-1), { id: 'a', healthy: true, cause: 'ejection ended' });
});
