#!/usr/bin/env node
/**
 * What `npm test` runs after the build: the suite in two tap runs, one coverage.
 *
 * 1. The unit files (UNITS: no sockets, no child processes) with --bail: a broken unit
 *    fails the run within seconds, before any balancer is started.
 * 2. Every other test file. tap wipes .tap/coverage at the start of a run unless it is
 *    given a --save list, so this run gets one (.tap/integration.list, written here): the
 *    coverage of run 1 is kept, and the report and the thresholds of .taprc at the end of
 *    run 2 are over both runs together.
 *
 * When a run fails, the failed assertions (with their diagnostics) are printed again last,
 * from tap's saved results: a CI log that keeps only its tail still says what failed.
 *
 * A new test file is an integration file until it is added to UNITS. Extra arguments go
 * to both tap runs (e.g. `npm test -- --reporter=terse`).
 *
 *   node scripts/test.mjs            both runs (npm test, after npm run build)
 *   node scripts/test.mjs --units    run 1 only, without coverage (npm run test:units)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Test files that need neither sockets nor child processes: the fast-feedback run. */
export const UNITS = [
  'access-log-buffer',
  'access-log-units',
  'accounting',
  'admin-dashboard-sessions',
  'admin-series',
  'affinity-cookie',
  'backend-records',
  'codec-chunked',
  'codec-head-bytes',
  'codec-differential',
  'codec-request-head',
  'codec-response-differential',
  'codec-response-head',
  'control-units',
  'config-json-schema',
  'config-load',
  'drain-monitor',
  'duration',
  'front-connection-timers',
  'front-request-view',
  'handshake-answer',
  'hash-pins',
  'health-expect-status',
  'import-apache',
  'keyed-mac',
  'key-movement',
  'learned-sessions',
  'log-destination',
  'metrics-latency',
  'partition-directory',
  'partition-key',
  'partition-retry',
  'path-normalise',
  'proxy-protocol',
  'pool',
  'readiness',
  'redis-store-units',
  'redis-units',
  'request-checks',
  'request-cookies',
  'router',
  'router-partition',
  'workers-units',
].map((name) => `test/${name}.test.ts`);

const args = process.argv.slice(2);
const unitsOnly = args.includes('--units');
const passThrough = args.filter((a) => a !== '--units');

/** Runs the tap CLI of this project; returns its exit status. */
function tap(tapArgs) {
  const bin = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'tap.cmd' : 'tap');
  const res = spawnSync(bin, tapArgs, { cwd: root, stdio: 'inherit' });
  if (res.error) throw res.error;
  return res.status ?? 1;
}

const all = readdirSync(join(root, 'test')).filter((f) => f.endsWith('.test.ts')).map((f) => `test/${f}`);
const missing = UNITS.filter((f) => !all.includes(f));
if (missing.length > 0) {
  console.error(`scripts/test.mjs: UNITS names files that do not exist: ${missing.join(', ')}`);
  process.exit(1);
}

/**
 * printFailures repeats every failed assertion of the last tap run (TODO and SKIP excluded),
 * with the few lines of diagnostics tap wrote under it, from .tap/test-results.
 */
function printFailures() {
  const dir = join(root, '.tap', 'test-results');
  if (!existsSync(dir)) return;
  const out = [];
  for (const file of readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.tap'))) {
    const lines = readFileSync(join(dir, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!/^\s*not ok /.test(line) || /# (TODO|SKIP)/i.test(line)) return;
      out.push(`${file}: ${line.trim()}`, ...lines.slice(i + 1, i + 14).filter((l) => !/^\s*(ok|not ok) /.test(l)).map((l) => `    ${l.trim()}`));
    });
  }
  if (out.length > 0) console.log(`# failed assertions (again, from .tap/test-results):\n${out.join('\n')}`);
}

const started = Date.now();
const unitStatus = tap(unitsOnly ? ['--bail', '--disable-coverage', ...passThrough, ...UNITS] : ['--bail', '--allow-incomplete-coverage', '--coverage-report=none', ...passThrough, ...UNITS]);
console.log(`# unit files: ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (unitStatus !== 0) printFailures();
if (!unitsOnly && unitStatus === 0) console.log('# (the "incomplete coverage" lines above are expected: the thresholds hold over both runs, checked at the end)');
if (unitStatus !== 0 || unitsOnly) process.exit(unitStatus);

const integration = all.filter((f) => !UNITS.includes(f));
const list = join(root, '.tap', 'integration.list');
mkdirSync(dirname(list), { recursive: true });
writeFileSync(list, `${integration.join('\n')}\n`);
const status = tap([`--save=${list}`, ...passThrough]);
console.log(`# unit and integration files: ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (status !== 0) printFailures();
process.exit(status);
