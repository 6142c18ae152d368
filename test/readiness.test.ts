/**
 * readiness (src/pool/readiness.ts): the one judgement behind GET /healthz and
 * listen.healthPath. Any serving state keeps it ok; the reason names what stops it.
 */
import t from 'tap';
import { FILE_STATE_HEALTH, readiness } from '../src/pool/readiness.js';

t.test('ok while some backend serves sessions, whatever the others are', async (t) => {
  for (const serving of ['up', 'draining', 'drained', 'maintenance'] as const) {
    const r = readiness([serving, 'down', 'disabled'], FILE_STATE_HEALTH);
    t.equal(r.ok, true, `${serving} keeps it ok`);
    t.equal(r.reason, undefined);
    t.same(r.backends, { total: 3, up: 0, draining: 0, drained: 0, maintenance: 0, disabled: 1, down: 1, [serving]: 1 });
  }
});

t.test('not ok when nothing serves: the reason says why', async (t) => {
  t.equal(readiness(['down'], FILE_STATE_HEALTH).reason, 'the only backend is down');
  t.equal(readiness(['disabled', 'disabled', 'disabled'], FILE_STATE_HEALTH).reason, 'all 3 backends are disabled');
  t.equal(readiness(['down', 'disabled', 'down'], FILE_STATE_HEALTH).reason, 'no backend can serve: 2 down, 1 disabled');
  t.equal(readiness([], FILE_STATE_HEALTH).reason, 'there are no backends');
});

t.test('shared-state trouble is reported, never a reason to be not ok', async (t) => {
  const redis = { kind: 'redis', ok: false, reason: 'connection refused' } as const;
  const r = readiness(['up'], redis);
  t.equal(r.ok, true);
  t.same(r.state, redis);
});
