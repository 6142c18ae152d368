/**
 * DrainMonitor decides when a draining backend is drained: it holds no active session
 * (no request for sessionIdle) and no open WebSocket, or drain.maxWait has passed. It
 * reads the session accounting once a second and tells the pool; a session that comes
 * back to a drained backend before maxWait makes it draining again. Sessions are only known
 * from the traffic this process has seen: until it has watched for `sessionIdle` (after a
 * start or restart) "no session left" cannot be told, so only maxWait can drain before then.
 */
import type { Pool } from './pool.js';
import type { SessionTotals } from '../sessions/accounting.js';

/** DrainMonitor watches draining backends; see the file comment. */
export class DrainMonitor {
  #timer: NodeJS.Timeout | undefined;
  /** affinity.sessionIdle: how long the accounting must have watched before "no session" is known. */
  sessionIdle = 0;
  readonly #watchingSince: number;

  constructor(
    private readonly pool: Pool,
    private readonly accounting: Pick<SessionTotals, 'activeSessions' | 'counters'>,
    public maxWait: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#watchingSince = now();
  }

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
      const known = now - this.#watchingSince >= this.sessionIdle;
      const empty = known && this.accounting.activeSessions(id) === 0 && this.accounting.counters(id).websockets === 0;
      const expired = member.drainingSince !== undefined && now - member.drainingSince >= this.maxWait;
      const drained = empty || expired;
      if (drained !== member.drained) {
        this.pool.setDrained(id, drained, expired && !empty ? 'drain.maxWait passed' : drained ? 'no sessions left' : 'a session came back');
      }
    }
  }
}
