/**
 * Passive health (outlier detection, as Envoy's `consecutive_5xx`): the proxy reports
 * every proxied request or connection, and `outlier.consecutiveFailures` failures in a
 * row eject the backend — it is reported down to the HealthSink without waiting for the
 * next active check.
 *
 * Re-admission rule. When `outlier.ejectFor` has passed, the detector asks the `probe`
 * callback (normally `ActiveHealthChecker.probeOnce`, which answers true only when the
 * backend's last `rise` active checks, a fresh one included, were good). A good answer
 * ends the ejection: `setHealth(id, true, 'ejection ended')`. A bad answer, a thrown
 * error or a rejected promise keeps it ejected for another `ejectFor`, and so on. So an
 * ejected backend only comes back after good health checks, as SPEC's "down → back up
 * after rise good checks" asks. Without a `probe` callback the ejection simply ends
 * after `ejectFor`.
 *
 * While a backend is ejected its outcomes are ignored (requests still in flight when it
 * was ejected must not extend or end the ejection). The detector knows only a
 * HealthSink and never imports the pool or the balancer.
 */
import { parseDuration } from '../config/duration.js';
import type { Logger } from '../log.js';
import type { HealthSink } from './health-sink.js';

/** OutlierSettings are the `outlier` config keys; `ejectFor` as ms or "30s"-style text. */
export interface OutlierSettings {
  readonly consecutiveFailures: number;
  readonly ejectFor: number | string;
}

/**
 * ProxyFailureKind says what went wrong with a proxied request, for the log. Only
 * backend faults are failures: a refused or reset connection, a timeout, a malformed or
 * missing response (the 502 class). A client that aborts is not the backend's fault and
 * must not be recorded.
 */
export type ProxyFailureKind = 'refused' | 'reset' | 'timeout' | 'bad-response' | (string & {});

/** OutlierTimers lets tests drive ejection time with a fake clock. */
export interface OutlierTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** OutlierDetectorOptions are the optional collaborators. */
export interface OutlierDetectorOptions {
  /** Decides re-admission when an ejection ends; see the re-admission rule above. */
  readonly probe?: (id: string) => Promise<boolean>;
  readonly now?: () => number;
  readonly timers?: OutlierTimers;
  readonly logger?: Logger;
}

interface Entry {
  failures: number;
  /** ms since epoch when the current ejection period ends; 0 when not ejected. */
  ejectedUntil: number;
  timer: unknown;
}

const realTimers: OutlierTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** OutlierDetector ejects backends that fail real traffic and re-admits them per the rule above. */
export class OutlierDetector {
  #consecutiveFailures: number;
  #ejectForMs: number;
  readonly #sink: HealthSink;
  readonly #probe: ((id: string) => Promise<boolean>) | undefined;
  readonly #now: () => number;
  readonly #timers: OutlierTimers;
  readonly #logger: Logger | undefined;
  /** Only backends that have failed get an entry; a success never allocates. */
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(settings: OutlierSettings, sink: HealthSink, options: OutlierDetectorOptions = {}) {
    [this.#consecutiveFailures, this.#ejectForMs] = normalize(settings);
    this.#sink = sink;
    this.#probe = options.probe;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? realTimers;
    this.#logger = options.logger;
  }

  /** recordSuccess resets a backend's failure streak; O(1) and allocation-free (hot path). */
  recordSuccess(id: string): void {
    const entry = this.#entries.get(id);
    if (entry !== undefined && entry.ejectedUntil === 0) entry.failures = 0;
  }

  /** recordFailure counts a backend fault; the `consecutiveFailures`-th in a row ejects the backend. */
  recordFailure(id: string, kind: ProxyFailureKind): void {
    if (this.#closed) return;
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      entry = { failures: 0, ejectedUntil: 0, timer: undefined };
      this.#entries.set(id, entry);
    }
    if (entry.ejectedUntil !== 0) return;
    entry.failures++;
    if (entry.failures < this.#consecutiveFailures) return;
    const failures = entry.failures;
    this.#logger?.warn({ backend: id, failures, last: kind, ejectForMs: this.#ejectForMs }, 'backend ejected after consecutive proxy errors');
    this.#eject(id, entry);
    this.#tell(id, false, `ejected after ${failures} consecutive proxy errors`);
  }

  /** isEjected says whether the detector currently holds a backend out. */
  isEjected(id: string): boolean {
    return (this.#entries.get(id)?.ejectedUntil ?? 0) !== 0;
  }

  /** ejectedUntil is when the current ejection period ends (ms since epoch), for status pages. */
  ejectedUntil(id: string): number | undefined {
    const until = this.#entries.get(id)?.ejectedUntil ?? 0;
    return until === 0 ? undefined : until;
  }

  /** forget drops a removed backend's streak and ejection timer, without telling the sink. */
  forget(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    if (entry.timer !== undefined) this.#timers.clearTimeout(entry.timer);
    this.#entries.delete(id);
  }

  /**
   * endEjection ends an ejection early and tells the sink the backend is up: for a caller
   * that has just seen it pass its health checks (the end of affinity.failoverDelay). No-op
   * when the backend is not ejected.
   */
  endEjection(id: string, cause: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined || entry.ejectedUntil === 0) return;
    if (entry.timer !== undefined) this.#timers.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.ejectedUntil = 0;
    entry.failures = 0;
    this.#tell(id, true, cause);
  }

  /** updateSettings applies reloaded `outlier` keys: a new threshold at once, a new ejectFor from the next period. */
  updateSettings(settings: OutlierSettings): void {
    [this.#consecutiveFailures, this.#ejectForMs] = normalize(settings);
  }

  /** close stops every ejection timer; pending probe answers are ignored. Final. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) if (entry.timer !== undefined) this.#timers.clearTimeout(entry.timer);
    this.#entries.clear();
  }

  #eject(id: string, entry: Entry): void {
    entry.ejectedUntil = this.#now() + this.#ejectForMs;
    entry.timer = this.#timers.setTimeout(() => {
      entry.timer = undefined;
      void this.#ejectionPeriodOver(id, entry);
    }, this.#ejectForMs);
  }

  async #ejectionPeriodOver(id: string, entry: Entry): Promise<void> {
    let good = true;
    if (this.#probe !== undefined) {
      try {
        good = await this.#probe(id);
      } catch (err) {
        this.#logger?.warn({ err, backend: id }, 'outlier re-admission probe threw');
        good = false;
      }
    }
    if (this.#closed || this.#entries.get(id) !== entry) return; // closed or forgotten meanwhile
    if (!good) {
      this.#logger?.info({ backend: id, ejectForMs: this.#ejectForMs }, 'ejected backend still failing its check; ejected again');
      this.#eject(id, entry);
      return;
    }
    entry.ejectedUntil = 0;
    entry.failures = 0;
    this.#tell(id, true, 'ejection ended');
  }

  #tell(id: string, healthy: boolean, cause: string): void {
    try {
      this.#sink.setHealth(id, healthy, cause);
    } catch (err) {
      this.#logger?.error({ err, backend: id }, 'outlier detection: the health sink threw');
    }
  }
}

function normalize(settings: OutlierSettings): [number, number] {
  const ejectForMs = parseDuration(settings.ejectFor);
  if (ejectForMs === undefined || ejectForMs < 1) throw new Error(`outlier.ejectFor: "${settings.ejectFor}" is not a positive duration`);
  if (!(Number.isInteger(settings.consecutiveFailures) && settings.consecutiveFailures >= 1)) {
    throw new Error(`outlier.consecutiveFailures: ${settings.consecutiveFailures} must be an integer of at least 1`);
  }
  return [settings.consecutiveFailures, ejectForMs];
}
