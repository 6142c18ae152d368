/**
 * DrainMonitor decides when a draining backend is drained: it holds no active session
 * (no request for sessionIdle) and no open WebSocket, or drain.maxWait has passed. It
 * reads the session accounting once a second and tells the pool; a session that comes
 * back to a drained backend before maxWait makes it draining again.
 */
import type { Pool } from './pool.js';
import type { SessionAccounting } from '../sessions/accounting.js';

/** DrainMonitor watches draining backends; see the file comment. */
export class DrainMonitor {
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly accounting: SessionAccounting,
    public maxWait: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** start checks once a second (the timer does not keep the process alive). */
  start(): void {
    this.#timer ??= setInterval(() => this.check(), 1000).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** check applies the rule to every draining backend now. */
  check(): void {
    const now = this.now();
    for (const member of this.pool.members()) {
      if (member.admin !== 'draining') continue;
      const id = member.config.id;
      const empty = this.accounting.activeSessions(id) === 0 && this.accounting.counters(id).websockets === 0;
      const expired = member.drainingSince !== undefined && now - member.drainingSince >= this.maxWait;
      const drained = empty || expired;
      if (drained !== member.drained) {
        this.pool.setDrained(id, drained, expired && !empty ? 'drain.maxWait passed' : drained ? 'no sessions left' : 'a session came back');
      }
    }
  }
}
