/**
 * A worker process of `start --workers N`: the proxy of one process (LocalTraffic) on a
 * mirror of the primary's pool, with the primary's cookie keys and settings, so every
 * worker routes exactly as the others. Everything that must exist once lives in the
 * primary; the worker reports what its traffic shows and follows what it is told
 * (protocol.ts). It stops gracefully when the primary says so or on SIGTERM / SIGINT,
 * and at once if the primary disappears (node:cluster exits a worker whose IPC channel
 * closes).
 */
import cluster from 'node:cluster';
import { flushLogger } from '../log.js';
import { LocalTraffic } from '../traffic-plane.js';
import { clusterLogger } from './log.js';
import { PoolMirror } from './pool-mirror.js';
import { REPORT_INTERVAL_MS, type ToPrimary, type ToWorker, type WorkerInit } from './protocol.js';
import { WorkerReporter } from './reporter.js';
import { WorkerPartitions } from './worker-partitions.js';
import { sessionRows } from '../admin/sessions-view.js';

/** runWorker waits for the primary's init message, then serves until told to stop. */
export function runWorker(): void {
  // The primary reloads on SIGHUP and tells the workers; a hang-up must not stop them.
  process.on('SIGHUP', () => undefined);
  // Likewise SIGUSR1 (reopen log.file): the primary tells the workers (reopen-log); one
  // sent to a worker itself (`kill -USR1 $(pidof ...)` reaches every process) is taken
  // below once it serves, and until then must neither kill it nor start Node's inspector.
  process.on('SIGUSR1', () => undefined);
  const onInit = (message: ToWorker): void => {
    if (message.type !== 'init') return;
    process.off('message', onInit);
    void serve(message);
  };
  process.on('message', onInit);
  send({ type: 'ready' });
}

function send(message: ToPrimary): void {
  if (process.connected) process.send!(message);
}

async function serve(init: WorkerInit): Promise<void> {
  const logger = clusterLogger(init.logLevel, cluster.worker?.id);
  let settings = init.settings;
  const config = settings.config;
  const mirror = new PoolMirror(init.members);
  const partitions = config.affinity.mode === 'partition' ? new WorkerPartitions(config.affinity.partitions, init.partitionCounts, send) : undefined;
  let elsewhere: Record<string, number> = {};
  const reporter = new WorkerReporter(send, config.metrics.enabled);
  const traffic = new LocalTraffic(settings, {
    pool: mirror.pool,
    logger,
    observer: reporter,
    partitions,
    resolvePartition: partitions === undefined ? undefined : (key, backendId) => partitions.resolve(key, backendId),
    cluster: { sessionsElsewhere: (backendId) => elsewhere[backendId] ?? 0 },
    onLearn: (sessionId, backend) => send({ type: 'learned', sessionId, backend }),
  });
  process.on('SIGUSR1', () => traffic.reopenLog());
  const { learned, accounting } = traffic.sessions;
  for (const [sessionId, backend] of init.learned) learned.learn(sessionId, backend);
  if (partitions !== undefined) accounting.trackPartitionChanges();
  accounting.trackSessionChanges();
  send({ type: 'applied', change: init.change });

  let stopping: Promise<void> | undefined;
  let listening: Promise<unknown> = Promise.resolve();
  const stop = (graceMs: number): Promise<void> =>
    (stopping ??= (async () => {
      // Closing a server whose cluster listen is still pending crashes Node 20 (net.js
      // listenOnPrimaryHandle closes a null handle): let the listen finish first.
      await listening.catch(() => undefined);
      clearInterval(reportTimer);
      partitions?.close();
      await traffic.close(graceMs);
      send(reporter.take(accounting, 0, partitions?.takeSeen() ?? []));
      flushLogger(logger);
      process.exit(0);
    })());

  process.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'pool':
        for (const id of mirror.apply(message.members)) traffic.forgetBackend(id);
        break;
      case 'reconfigure':
        settings = message.settings;
        traffic.reconfigure(settings);
        partitions?.setPins(settings.config.affinity.partitions);
        reporter.metrics = settings.config.metrics.enabled;
        logger.level = message.logLevel;
        break;
      case 'totals':
        elsewhere = message.sessionsElsewhere;
        partitions?.setCounts(message.partitionCounts);
        break;
      case 'learned':
        if (message.backend === undefined) learned.forget(message.sessionId);
        else learned.learn(message.sessionId, message.backend);
        break;
      case 'partition':
        partitions?.changed(message.key, message.lookup);
        partitions?.setCounts(message.partitionCounts);
        break;
      case 'assigned':
        partitions?.answered(message.id, message, message.error);
        break;
      case 'shutdown':
        void stop(message.graceMs);
        break;
      case 'reopen-log':
        traffic.reopenLog();
        break;
      case 'closeTunnels':
        traffic.closeTunnels(message.backend);
        break;
      case 'sessions': {
        const { sessions, total } = accounting.listSessions(message.backend, message.limit);
        send({ type: 'sessions', id: message.id, sessions: sessionRows(sessions, Date.now(), cluster.worker?.id), total });
        break;
      }
    }
    // Every change is applied synchronously above: say so (the primary's `behind`).
    if ('change' in message) send({ type: 'applied', change: message.change });
  });

  let reportTimer: NodeJS.Timeout | undefined;
  try {
    const attempt = traffic.listen();
    listening = attempt;
    const bound = await attempt;
    send({ type: 'listening', url: bound.url, redirectUrl: bound.redirectUrl });
  } catch (err) {
    flushLogger(logger);
    // Exit once the primary has the reason (it words the start-up error).
    if (process.connected) process.send!({ type: 'failed', message: (err as Error).message } satisfies ToPrimary, () => process.exit(1));
    else process.exit(1);
    return;
  }
  reportTimer = setInterval(() => send(reporter.take(accounting, traffic.inFlight, partitions?.takeSeen() ?? [])), REPORT_INTERVAL_MS);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(settings.config.timeouts.shutdownGrace));
}
