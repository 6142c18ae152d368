/**
 * A real redis-server for integration tests (Debian's package; `.ci/run` installs it when
 * missing): each test starts its own on a free loopback port, with no persistence and its
 * own directory under the test's tmp dir, and stops it at teardown. Never the system Redis
 * on 6379 (its own temp dir, removed at teardown). `kill()` and `restart()` keep the port, so failure tests can take Redis away
 * and bring it back under clients that stay connected to the same address.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { RedisConnection, type ConnectionOptions } from '../../src/state/redis/redis-connection.js';
import { redisKeys, type RedisKeys } from '../../src/state/redis/redis-keys.js';
import { redisTarget } from '../../src/state/redis/redis-settings.js';
import { freePort, type TestLike } from './processes.js';

/** The server binary; REDIS_SERVER overrides it. */
const BIN = process.env['REDIS_SERVER'] ?? 'redis-server';

/** redisMissing is a skip message when no redis-server can be run, else undefined. */
export function redisMissing(): string | undefined {
  const res = spawnSync(BIN, ['--version'], { encoding: 'utf8' });
  if (res.error !== undefined || res.status !== 0) return `${BIN} is not installed (apt-get install redis-server, or run .ci/run): the Redis tests need a real server`;
  return undefined;
}

/** A running test Redis. */
export interface TestRedis {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** SIGKILLs the server (clients see the connection drop) and resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence) and resolves once it answers PING. */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** Stops it for good (also done at teardown). */
  stop(): Promise<void>;
}

/** startRedis starts a redis-server on a free loopback port, stopped at teardown; `extraArgs` go to redis-server (e.g. `--replicaof`). */
export async function startRedis(t: TestLike, extraArgs: string[] = []): Promise<TestRedis> {
  return startServer(t, (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...extraArgs]);
}

/**
 * startSentinel starts a Redis Sentinel on a free loopback port that monitors `master`
 * as `name` (quorum 1, a master is down after 1 s), stopped at teardown.
 */
export async function startSentinel(t: TestLike, master: TestRedis, name = 'mymaster'): Promise<TestRedis> {
  return startServer(t, (port, dir) => {
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'protected-mode no',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 10000`,
        '',
      ].join('\n'),
    );
    return [conf, '--sentinel'];
  });
}

async function startServer(t: TestLike, argsFor: (port: number, dir: string) => string[]): Promise<TestRedis> {
  const port = await freePort();
  // Its own temp dir (not t.testdir(): calling that again in the test would empty it under the server).
  const dir = mkdtempSync(join(tmpdir(), `servoy-lb-redis-${port}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let proc: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    const child = spawn(BIN, argsFor(port, dir), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc = child;
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before answering PING:\n${output}`))));
    exited.catch(() => undefined);
    await Promise.race([waitForPing(port, 30_000), exited]);
  };

  const kill = async (): Promise<void> => {
    const child = proc;
    proc = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await gone;
  };

  await launch();
  t.teardown(kill);
  return {
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    pause: () => void proc?.kill('SIGSTOP'),
    resume: () => void proc?.kill('SIGCONT'),
    stop: kill,
  };
}

/** waitForPing resolves once a raw PING on the port is answered +PONG; rejects after timeoutMs. */
async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pingOnce(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // poll interval of a condition wait, not a fixed wait
  }
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

/** An instance's view of a test Redis: its connection and the keys of one pool. */
export interface TestInstance {
  conn: RedisConnection;
  keys: RedisKeys;
}

/**
 * connectInstance opens a RedisConnection as one balancer instance would (short command
 * timeout and backoff, so failure tests run quickly), waits until it is up, and closes it
 * at teardown.
 */
export async function connectInstance(t: TestLike, redis: TestRedis, pool = 'test', opts: ConnectionOptions = {}): Promise<TestInstance> {
  const target = redisTarget({ url: redis.url, pool });
  if (!target.ok) throw new Error(target.error);
  const conn = new RedisConnection(target.target, { commandTimeoutMs: 1000, maxBackoffMs: 200, ...opts });
  t.teardown(() => conn.close());
  if (!(await conn.waitUntilUp(30_000))) throw new Error(`no connection to ${redis.url}: ${conn.state.lastError ?? '?'}`);
  return { conn, keys: redisKeys(target.target.prefix) };
}
