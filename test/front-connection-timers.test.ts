/**
 * ConnectionTimers (src/proxy/front/connection-timers.ts): only the armed timeout fires;
 * re-arming a kind reuses its Timeout (refresh) unless its length changed; a disarmed or
 * replaced timeout never fires; stop() clears them all.
 */
import t from 'tap';
import { Armed, ConnectionTimers } from '../src/proxy/front/connection-timers.js';
import { waitFor } from './helpers/lb.js';

t.test('the armed timeout fires, once, and is disarmed by then', async (t) => {
  const fired: Armed[] = [];
  const timers = new ConnectionTimers((kind) => fired.push(kind));
  t.teardown(() => timers.stop());
  timers.arm(Armed.Head, 10);
  t.equal(timers.armed, Armed.Head);
  await waitFor(() => fired.length === 1, 5000, 'the head timeout', 5);
  t.same(fired, [Armed.Head]);
  t.equal(timers.armed, Armed.None);
});

t.test('a replaced or disarmed timeout never fires; re-arming after it fired works', async (t) => {
  const fired: Armed[] = [];
  const timers = new ConnectionTimers((kind) => fired.push(kind));
  t.teardown(() => timers.stop());
  timers.arm(Armed.Head, 5);
  timers.arm(Armed.Idle, 40); // replaces the head timeout, which still runs out first
  await waitFor(() => fired.length === 1, 5000, 'the idle timeout', 5);
  t.same(fired, [Armed.Idle], 'only the armed one counted');
  timers.arm(Armed.Body, 5);
  timers.disarm();
  timers.arm(Armed.Idle, 40); // the same kind again: its Timeout is refreshed
  await waitFor(() => fired.length === 2, 5000, 'the idle timeout again', 5);
  t.same(fired, [Armed.Idle, Armed.Idle], 'the disarmed body timeout did not fire');
  timers.arm(Armed.Head, 0);
  t.equal(timers.armed, Armed.None, 'a length of 0 arms nothing');
});

t.test('restart starts only the armed kind over; stop clears everything', async (t) => {
  const fired: Armed[] = [];
  const timers = new ConnectionTimers((kind) => fired.push(kind));
  timers.arm(Armed.Body, 30);
  timers.restart(Armed.Head); // not armed: nothing happens
  timers.restart(Armed.Body);
  await waitFor(() => fired.length === 1, 5000, 'the body timeout', 5);
  t.same(fired, [Armed.Body]);
  timers.arm(Armed.Idle, 5);
  timers.arm(Armed.Head, 40);
  timers.stop();
  const other = new ConnectionTimers((kind) => fired.push(kind));
  other.arm(Armed.Head, 60);
  await waitFor(() => fired.length === 2, 5000, 'a later timeout of another set', 5);
  t.same(fired, [Armed.Body, Armed.Head], 'nothing of the stopped set fired before it');
  other.stop();
});
