/**
 * Process helpers for integration tests: run the real `bin/servoy-lb start` as a child
 * process (so tests exercise the command an administrator runs, signals included) in
 * front of simulated Servoy servers, and always clean everything up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServoySim, type ServoySim, type ServoySimOptions } from '../../examples/servoy-sim.js';

/** The minimal slice of a tap `Test` these helpers use (keeps them independent of tap's types). */
export interface TestLike {
  teardown(fn: () => unknown): void;
  testdir(): string;
  readonly testdirName: string;
}

/** Repository root, so the helpers work from any cwd. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binPath = join(repoRoot, 'bin', 'servoy-lb');

/** A running balancer child process. */
export interface BalancerProcess {
  /** Client-facing URL, taken from the "listening" log line. */
  url: string;
  /** Admin API URL when the config names `admin.port` (else undefined). */
  adminUrl: string | undefined;
  proc: ChildProcess;
  /** Path of the config file written for it (edit it and `reload` in tests). */
  configFile: string;
  /** Every stdout and stderr line so far. */
  logs(): string[];
  /** Resolves with the first log line (current or future) matching; rejects after timeoutMs. */
  waitForLog(match: RegExp | ((line: string) => boolean), timeoutMs?: number): Promise<string>;
  /** Sends `signal` and resolves with the exit code (null if it died of a signal); SIGKILL after 10 s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Options for {@link spawnBalancer}. */
export interface SpawnOptions {
  /** extra arguments after `start -c FILE` (e.g. `['--workers', '2']`) */
  args?: string[];
  /** extra environment variables */
  env?: Record<string, string>;
  /** how long to wait for the listening line; default 60 s (a busy machine: only a failing start waits that long) */
  timeoutMs?: number;
  /** script to run instead of bin/servoy-lb (tests of this helper) */
  bin?: string;
}

let configCounter = 0;

/**
 * Writes `config` as JSON into the test's testdir (created if absent, kept if the test
 * already filled it) and runs `node bin/servoy-lb start -c <file>` with that dir as cwd.
 * Resolves once stdout shows a JSON log line whose `msg` contains "listening" (and not
 * "admin") with a `url`; rejects with the captured output if the process exits first.
 * A teardown kills the process.
 */
export async function spawnBalancer(t: TestLike, config: object, opts: SpawnOptions = {}): Promise<BalancerProcess> {
  const dir = existsSync(t.testdirName) ? t.testdirName : t.testdir();
  await mkdir(dir, { recursive: true });
  const configFile = join(dir, `lb-${++configCounter}.config.json`);
  // Parallel test files must not fight over the default admin port (8081): unless the test
  // names one, the admin API takes a free port and its URL is read from the log.
  const givenAdmin = (config as { admin?: { port?: number } }).admin;
  const written = givenAdmin?.port === undefined ? { ...config, admin: { ...givenAdmin, port: 0 } } : config;
  await writeFile(configFile, JSON.stringify(written, null, 2));

  const proc = spawn(process.execPath, [opts.bin ?? binPath, 'start', '-c', configFile, ...(opts.args ?? [])], {
    cwd: dir,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const lineListeners = new Set<(line: string) => void>();
  const collect = (stream: NodeJS.ReadableStream) => {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        lines.push(line);
        for (const l of lineListeners) l(line);
      }
    });
  };
  collect(proc.stdout!);
  collect(proc.stderr!);
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  let running = true;
  void exited.then(() => { running = false; });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (running) proc.kill(signal);
    const kill = setTimeout(() => { if (running) proc.kill('SIGKILL'); }, 10_000);
    try { return await exited; } finally { clearTimeout(kill); }
  };
  t.teardown(async () => {
    if (!running) return;
    proc.kill('SIGTERM');
    const kill = setTimeout(() => { if (running) proc.kill('SIGKILL'); }, 3000);
    await exited;
    clearTimeout(kill);
  });

  const waitForLog = (match: RegExp | ((line: string) => boolean), timeoutMs = 10_000): Promise<string> => {
    const test = typeof match === 'function' ? match : (l: string) => match.test(l);
    const found = lines.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const done = () => { clearTimeout(timer); lineListeners.delete(listener); };
      const listener = (line: string) => { if (test(line)) { done(); resolve(line); } };
      const timer = setTimeout(() => { done(); reject(new Error(`no log line matching ${String(match)} within ${timeoutMs} ms; output:\n${lines.join('\n')}`)); }, timeoutMs);
      lineListeners.add(listener);
    });
  };

  const timeoutMs = opts.timeoutMs ?? 60_000;
  const url = await new Promise<string>((resolve, reject) => {
    const listener = (line: string) => {
      const u = listeningUrl(line);
      if (u) { finish(); resolve(u); }
    };
    const onExit = (code: number | null) => { finish(); reject(new Error(`servoy-lb exited (${code}) before listening:\n${lines.join('\n')}`)); };
    const timer = setTimeout(() => { finish(); reject(new Error(`servoy-lb did not log "listening" within ${timeoutMs} ms:\n${lines.join('\n')}`)); }, timeoutMs);
    const finish = () => { clearTimeout(timer); lineListeners.delete(listener); proc.off('exit', onExit); };
    for (const l of lines) { const u = listeningUrl(l); if (u) { clearTimeout(timer); return resolve(u); } }
    lineListeners.add(listener);
    proc.once('exit', onExit);
  });

  // Logged right after the listening line, but logs are batched (flushed every 250 ms).
  const adminLine = await waitForLog((line) => line.includes('"adminUrl"'), 30_000).catch(() => undefined);
  const adminUrl = adminLine === undefined ? undefined : (JSON.parse(adminLine) as { adminUrl?: string }).adminUrl;
  return { url, adminUrl, proc, configFile, logs: () => [...lines], waitForLog, stop };
}

/** The `url` of a JSON log line announcing the client listener, or undefined. */
function listeningUrl(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const rec = JSON.parse(line) as { msg?: unknown; url?: unknown };
    if (typeof rec.msg === 'string' && rec.msg.includes('listening') && !rec.msg.includes('admin') && typeof rec.url === 'string') return rec.url;
  } catch { /* not JSON */ }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close) — for configs that need a fixed port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts one simulator per route on ephemeral ports and closes them all at teardown. */
export async function startSims(t: TestLike, routes: string[], opts: Omit<ServoySimOptions, 'route'> = {}): Promise<ServoySim[]> {
  const started = await Promise.allSettled(routes.map((route) => startServoySim({ ...opts, route })));
  const sims = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  t.teardown(() => Promise.all(sims.map((s) => s.close())));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return sims;
}

/** The `backends` config section for simulators (id = route = the simulator's route). */
export function backendsFor(sims: ServoySim[]): { id: string; url: string }[] {
  return sims.map((s) => ({ id: s.route, url: s.url }));
}

/** CliRun is how one CLI run ended: its exit code (null when killed) and its output. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * runCli runs `node bin/servoy-lb ...args` to completion (killed after timeoutMs, 120 s by
 * default); a teardown kills it if the test ends first.
 */
export function runCli(t: TestLike, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const proc = spawn(process.execPath, [join(repoRoot, 'bin', 'servoy-lb'), ...args], { cwd: opts.cwd ?? repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  // 120 s by default: a busy 2-core machine can take many seconds to start node; only a hung command waits this long.
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const done = new Promise<CliRun>((resolve) => proc.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); }));
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); return done.then(() => undefined); });
  return done;
}
