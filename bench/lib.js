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
