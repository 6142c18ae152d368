/**
 * Durability of the state file through the real CLI (SPEC "Backend states": admin states
 * and added/removed backends persist in the state store):
 * - kill -9 in the middle of a burst of admin changes (drain / undrain / add / remove, 50
 *   calls in flight): after a restart the state file loads, and every change acknowledged
 *   (2xx received) before the kill is there — an acknowledged add is present, the last
 *   acknowledged drain/undrain of a backend is its state — unless the one call on that
 *   backend still in flight at the kill landed after it (written, answer lost). Three rounds.
 * - a state file damaged while the balancer was down (garbage written into it): one log
 *   line names the file, the previous good copy (`<file>.prev`) is used, the balancer serves;
 *   with `.prev` damaged too, `start` exits 1 with one sentence naming the file.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t, { type Test } from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { jsonLogs, lbConfig, startBalancer } from './helpers/lb.js';
import { spawnBalancer, startSims, type BalancerProcess } from './helpers/processes.js';
import { api as adminApi } from './helpers/admin-env.js';

/** The admin API call of test/helpers/admin-env.ts, with the body as 4th argument. */
const api = (lb: BalancerProcess, method: string, path: string, body?: unknown) => adminApi(lb, method, path, { body });

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];

async function rows(lb: BalancerProcess): Promise<Map<string, any>> {
  const res = await api(lb, 'GET', '/api/backends');
  if (res.status !== 200) throw new Error(`GET /api/backends answered ${res.status}: ${res.text}`);
  return new Map((res.json.backends as any[]).map((b) => [b.id, b]));
}

function durabilityConfig(sims: Parameters<typeof lbConfig>[0], stateFile: string): Promise<Record<string, unknown>> {
  return lbConfig(sims, {
    state: { file: stateFile },
    // timeout 1s: on a loaded machine short probes of the in-process simulators fail at random.
    healthCheck: { path: '/', interval: '2s', timeout: '1s', rise: 1, fall: 3 },
    timeouts: { shutdownGrace: '2s' },
    log: { access: false },
  });
}

// ---- the model of what was asked and acknowledged ---------------------------------------

type Op = 'add' | 'drain' | 'undrain' | 'disable' | 'enable' | 'remove';
type Admin = 'ready' | 'draining' | 'disabled';
interface BackendState {
  present: boolean;
  admin: Admin;
}
interface Track {
  /** State after every acknowledged call, in issue order (one call at a time per backend). */
  acked: BackendState;
  /** The call in flight when the balancer was killed, if any. */
  inFlight: Op | undefined;
  /** Admin calls made on this backend (picks the next one from CYCLE). */
  calls: number;
}

/**
 * The admin calls each backend goes through, in a loop. Every call moves it to a state other
 * than the one before the previous call, except `undrain` right after `drain`: so when a call
 * is still in flight at the kill, "the acknowledged call was lost" is almost always told apart
 * from "the call in flight landed" (SPEC: an acknowledged change must survive).
 */
const CYCLE: Op[] = ['drain', 'disable', 'enable', 'drain', 'undrain'];

function apply(state: BackendState, op: Op): BackendState {
  switch (op) {
    case 'add':
      return { present: true, admin: 'ready' };
    case 'remove':
      return { present: false, admin: 'ready' };
    case 'drain':
      return { ...state, admin: 'draining' };
    case 'disable':
      return { ...state, admin: 'disabled' };
    case 'undrain':
      return { ...state, admin: state.admin === 'draining' ? 'ready' : state.admin };
    case 'enable':
      return { ...state, admin: state.admin === 'disabled' ? 'ready' : state.admin };
  }
}

const show = (s: BackendState): string => (s.present ? s.admin : 'absent');

/**
 * One burst: 50 chains of sequential admin calls (3 cycle the configured backends, 47 each
 * work through their own run-time backends: add, one to four admin calls, remove every other
 * one, next id), until `killAfterAcks` calls were acknowledged; then (at once, or a random few ms later)
 * SIGKILL while ~50 calls are in flight.
 */
async function burstAndKill(t: Test, lb: BalancerProcess, tracks: Map<string, Track>, urls: string[], killAfterAcks: number, round: number): Promise<{ acks: number; inFlightAtKill: number }> {
  let acks = 0;
  let nonAcks = 0;
  let inFlight = 0;
  let inFlightAtKill = 0;
  let killing = false;
  let killed = false;
  const random = (n: number) => Math.floor(Math.random() * n);
  const exited = new Promise<void>((resolve) => {
    if (lb.proc.exitCode !== null || lb.proc.signalCode !== null) resolve();
    else lb.proc.once('exit', () => resolve());
  });
  const kill = (): void => {
    if (killed) return;
    killed = true;
    inFlightAtKill = inFlight;
    lb.proc.kill('SIGKILL');
  };

  const call = async (id: string, op: Op, method: string, path: string, body?: unknown): Promise<boolean> => {
    const track = tracks.get(id) ?? { acked: { present: false, admin: 'ready' }, inFlight: undefined, calls: 0 };
    tracks.set(id, track);
    track.inFlight = op;
    if (op !== 'add' && op !== 'remove') track.calls++;
    inFlight++;
    try {
      const res = await api(lb, method, path, body);
      track.inFlight = undefined;
      if (res.status < 200 || res.status > 299) {
        // Refused: nothing changed. Not expected in this burst; counted and reported.
        nonAcks++;
        t.comment(`round ${round}: ${method} ${path} answered ${res.status}: ${res.text}`);
        return false;
      }
      track.acked = apply(track.acked, op);
      acks++;
      if (!killing && acks >= killAfterAcks) {
        // Right at an acknowledgement (what a lost acknowledged change would show best), or
        // a few ms later (anywhere in a save).
        killing = true;
        if (round % 2 === 0) kill();
        else setTimeout(kill, random(15));
      }
      return !killed;
    } catch {
      return false; // the balancer died with this call in flight: track.inFlight stays
    } finally {
      inFlight--;
    }
  };
  const adminCall = (id: string): Promise<boolean> => {
    const op = CYCLE[tracks.get(id)!.calls % CYCLE.length]!;
    return call(id, op, 'POST', `/api/backends/${id}/${op}`);
  };

  const configChain = async (id: string): Promise<void> => {
    while (!killed && (await adminCall(id)));
  };
  const runtimeChain = async (chain: number): Promise<void> => {
    for (let n = 0; !killed; n++) {
      const id = `r${round}-${chain}-${n}`;
      if (!(await call(id, 'add', 'POST', '/api/backends', { id, url: urls[random(urls.length)], weight: 1 + random(3) }))) return;
      for (let k = 1 + random(4); k > 0; k--) if (!(await adminCall(id))) return;
      // Every other backend stays in the pool (so the state file keeps growing during the burst).
      if (n % 2 === 1 && !(await call(id, 'remove', 'DELETE', `/api/backends/${id}?force=1`))) return;
    }
  };

  const guard = setTimeout(kill, 60_000);
  await Promise.all([...ROUTES.map(configChain), ...Array.from({ length: 47 }, (_, i) => runtimeChain(i))]);
  await exited;
  clearTimeout(guard);
  t.equal(nonAcks, 0, `round ${round}: every admin call answered before the kill was a 2xx`);
  return { acks, inFlightAtKill };
}

t.test('kill -9 during a burst of 50 concurrent admin changes: every acknowledged change survives the restart', { timeout: 110_000 }, async (t) => {
  const sims = await startSims(t, ROUTES);
  const dir = t.testdir({});
  const stateFile = join(dir, 'servoy-lb.state.json');
  const cfg = await durabilityConfig(sims, stateFile);
  const urls = sims.map((s) => s.url);
  const tracks = new Map<string, Track>(ROUTES.map((id) => [id, { acked: { present: true, admin: 'ready' }, inFlight: undefined, calls: 0 }]));

  let lb = await startBalancer(t, cfg);
  for (let round = 0; round < 3; round++) {
    const killAfter = 100 + Math.floor(Math.random() * 150);
    const started = Date.now();
    const { acks, inFlightAtKill } = await burstAndKill(t, lb, tracks, urls, killAfter, round);
    t.comment(`round ${round}: ${acks} calls acknowledged in ${Date.now() - started} ms; killed with ${inFlightAtKill} in flight`);
    t.ok(inFlightAtKill >= 40, `round ${round}: the kill came with calls in flight (${inFlightAtKill})`);

    // The file on disk parses as it is (no recovery needed), .prev too.
    t.doesNotThrow(() => JSON.parse(readFileSync(stateFile, 'utf8')), `round ${round}: the state file is complete JSON after the kill`);
    t.doesNotThrow(() => JSON.parse(readFileSync(`${stateFile}.prev`, 'utf8')), `round ${round}: so is ${stateFile}.prev`);

    lb = await startBalancer(t, cfg);
    const logs = jsonLogs(lb.logs());
    t.same(logs.filter((l) => (l.level as number) >= 40 && (l.file !== undefined || /state file/.test(String(l.msg)))), [], `round ${round}: the restart loaded the state file without a warning`);
    t.same(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], `round ${round}: the temp file of the killed save is gone`);

    const found = await rows(lb);
    let checked = 0;
    let landedInFlight = 0;
    const wrong: string[] = [];
    for (const [id, track] of tracks) {
      const row = found.get(id);
      const actual: BackendState = row === undefined ? { present: false, admin: 'ready' } : { present: true, admin: row.admin };
      const ok = show(actual) === show(track.acked);
      const okInFlight = track.inFlight !== undefined && show(actual) === show(apply(track.acked, track.inFlight));
      if (!ok && !okInFlight) wrong.push(`${id}: acknowledged ${show(track.acked)}${track.inFlight ? ` (then ${track.inFlight} in flight)` : ''}, found ${show(actual)}`);
      if (!ok && okInFlight) landedInFlight++;
      checked++;
      // What the restarted balancer shows is the truth from now on; nothing is in flight, and
      // the next admin call is the one CYCLE makes from that state.
      track.acked = actual;
      track.inFlight = undefined;
      track.calls = actual.admin === 'draining' ? 1 : actual.admin === 'disabled' ? 2 : 0;
    }
    t.same(wrong, [], `round ${round}: all ${checked} backends touched so far are as acknowledged`);
    t.comment(`round ${round}: ${landedInFlight} calls in flight at the kill had been written (their answer was lost)`);
    const unknown = [...found.keys()].filter((id) => !tracks.has(id));
    t.same(unknown, [], `round ${round}: no backend nobody added`);
    // The restarted balancer serves clients.
    const res = await request(`${lb.url}/api/whoami`, { reset: true });
    t.equal(res.statusCode, 200, `round ${round}: clients are served after the restart`);
    await res.body.dump();
  }
  t.equal(await lb.stop(), 0, 'clean exit at the end');
});

t.test('a damaged state file: one log line names it, the previous good copy is used; both damaged: one sentence, exit 1', { timeout: 60_000 }, async (t) => {
  const sims = await startSims(t, ROUTES);
  const dir = t.testdir({});
  const stateFile = join(dir, 'servoy-lb.state.json');
  const cfg = await durabilityConfig(sims, stateFile);

  const lb1 = await startBalancer(t, cfg);
  t.equal((await api(lb1, 'POST', '/api/backends/servoy-b/drain')).status, 200);
  t.equal((await api(lb1, 'POST', '/api/backends/servoy-c/drain')).status, 200, 'the last change: only in the state file, not in .prev');
  t.equal(await lb1.stop(), 0);
  const good = JSON.parse(readFileSync(`${stateFile}.prev`, 'utf8'));
  t.match(good.backends.admin, { 'servoy-b': { admin: 'draining' } }, '.prev holds the state before the last change');
  t.notOk('servoy-c' in good.backends.admin);

  writeFileSync(stateFile, '{"version": 1, "cookieSecret": "\u0000garbage\u00ff, "backends": [[[');
  const lb2 = await startBalancer(t, cfg);
  await lb2.waitForLog(/admin API listening/);
  const naming = lb2.logs().filter((l) => l.includes(stateFile));
  t.equal(naming.length, 1, 'exactly one log line names the state file');
  const warning = JSON.parse(naming[0]!);
  t.equal(warning.level, 40, 'a warning');
  t.match(warning.msg, /^state file \S+servoy-lb\.state\.json is damaged \(not valid JSON: .*\); loaded the previous good copy \S+servoy-lb\.state\.json\.prev instead/);
  t.equal(warning.file, stateFile);
  const found = await rows(lb2);
  t.equal(found.get('servoy-b').admin, 'draining', 'the change in the previous copy is there');
  t.equal(found.get('servoy-c').admin, 'ready', 'the last change, made after that copy, is lost (and said so)');
  const restored = JSON.parse(readFileSync(stateFile, 'utf8'));
  t.equal(restored.cookieSecret, good.cookieSecret, 'the generated cookie secret is kept: affinity cookies stay valid');
  t.equal(readdirSync(dir).filter((n) => n.startsWith('servoy-lb.state.json.corrupt-')).length, 1, 'the damaged file is kept aside');
  const res = await request(`${lb2.url}/api/whoami`, { reset: true });
  t.equal(res.statusCode, 200, 'the balancer serves');
  await res.body.dump();
  t.equal(await lb2.stop(), 0);

  // Both damaged: start refuses, in one sentence naming the file.
  writeFileSync(stateFile, 'garbage');
  writeFileSync(`${stateFile}.prev`, '{"version":');
  const err = await spawnBalancer(t, cfg, { timeoutMs: 60_000 }).then(() => undefined, (e: Error) => e);
  t.ok(err !== undefined, 'start fails');
  t.match(err?.message, /^servoy-lb exited \(1\) before listening/, 'exit code 1');
  const output = (err?.message ?? '').split('\n').slice(1).filter((l) => l.trim() !== '');
  t.equal(output.length, 1, `one line of output: ${JSON.stringify(output)}`);
  t.match(output[0], /^servoy-lb: state file \S+servoy-lb\.state\.json is damaged \(not valid JSON: .*\) and its previous copy \S+\.prev is damaged too \(.*\); restore it from a backup, or move it away to start with a fresh state/);
  t.notMatch(output[0], /\bat \S+:\d+:\d+/, 'no stack trace');
});
