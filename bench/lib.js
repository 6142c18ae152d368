// Shared helpers for the benchmarks: child processes, CPU time and memory from /proc,
// free ports, and pinning with taskset when it exists. Loopback only; every loop bounded.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** cpuMicros is user+system CPU time of a process in microseconds (from /proc/PID/stat). */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS;
}

/** memoryKiB reads VmRSS and VmHWM (peak) of a process. */
export function memoryKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const read = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss: read('VmRSS'), peak: read('VmHWM') };
}

/** openFileHardLimit is this process's hard limit on open files (`ulimit -Hn`), which a child can raise its own to. */
export function openFileHardLimit() {
  return Number(/^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
}

/** freePort asks the kernel for a free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const hasTaskset = existsSync('/usr/bin/taskset');

/** start runs a command (pinned to `cpu` when taskset exists) and waits for `ready` on stdout. */
export function start(cmd, args, { cpu, ready, env, quiet = true } = {}) {
  const [file, argv] = hasTaskset && cpu !== undefined ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${out.slice(-500)}`)), 15000);
    const check = (chunk) => {
      if (out.length < 100_000) out += chunk;
      if (ready === undefined || ready.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', (c) => (out += c));
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${out.slice(-500)}`)));
    if (ready === undefined) check('');
  });
  if (quiet) done.then(() => child.stdout.resume(), () => undefined);
  return done;
}

/** stop ends a child process and waits for it. */
export async function stop(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** writeResult saves a result as JSON in bench/results/. */
export function writeResult(name, data) {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, ...data }, null, 2)}\n`);
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** procStat reads user and system CPU time (microseconds) and minor page faults of a process. */
export function procStat(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { userMicros: (Number(fields[11]) * 1e6) / TICKS, sysMicros: (Number(fields[12]) * 1e6) / TICKS, minorFaults: Number(fields[7]) };
}

function cpuIdle() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: line[3] + line[4], total: line.reduce((a, b) => a + b, 0) };
}

/**
 * waitQuiet waits (at most maxMs) until the machine has been at least `idleShare` idle over
 * a 250 ms window, so a measurement does not start while other work (a test suite) holds the
 * CPUs. Returns the idle share seen last. Bounded: it never waits longer than maxMs.
 */
export async function waitQuiet({ idleShare = 0.85, maxMs = 10_000 } = {}) {
  const deadline = Date.now() + maxMs;
  let share = 0;
  do {
    const a = cpuIdle();
    await new Promise((r) => setTimeout(r, 250));
    const b = cpuIdle();
    share = (b.idle - a.idle) / Math.max(1, b.total - a.total);
    if (share >= idleShare) break;
  } while (Date.now() < deadline);
  return share;
}

/** waitForPort resolves once an HTTP server answers on the loopback port (5 s at most). */
export async function waitForPort(port) {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listening on ${port}`);
}

/**
 * runJsonClient runs a node client script pinned to CPU 1 (with taskset), killed after
 * timeoutMs, and resolves with the one JSON line it prints, or { error } with its output.
 */
export function runJsonClient(args, timeoutMs) {
  const [file, argv] = hasTaskset ? ['taskset', ['-c', '1', process.execPath, ...args]] : [process.execPath, args];
  return new Promise((resolve) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      const line = /\{.*\}/.exec(out);
      if (code !== 0 || line === null) resolve({ error: (out.trim() || `exit ${code} (timeout ${timeoutMs / 1000} s?)`).slice(0, 300) });
      else resolve(JSON.parse(line[0]));
    });
  });
}

/**
 * servoyLbArgs is the node argument list that runs `bin/servoy-lb ...args` of the checkout at
 * `root` as its shebang does (with the node flags on its first line, then `extraFlags`), so a
 * bench measures the balancer the way `servoy-lb start` runs it.
 */
export function servoyLbArgs(args, { root = ROOT, extraFlags = [] } = {}) {
  const bin = join(root, 'bin/servoy-lb');
  const shebang = readFileSync(bin, 'utf8').split('\n', 1)[0];
  const shebangFlags = shebang.split(/\s+/).filter((w) => w.startsWith('--'));
  return [...shebangFlags, ...extraFlags, bin, ...args];
}
