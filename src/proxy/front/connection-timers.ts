/**
 * ConnectionTimers are a front connection's timeouts, of which at most one is armed at a
 * time: waiting for a head (408), idle between keep-alive requests (silent close), a
 * stalled request body (408). Each kind's Timeout is made at first use and re-armed with
 * refresh(), so a keep-alive connection makes no timer object per request; disarming only
 * forgets which one counts, and a disarmed Timeout that fires does nothing.
 */

/** Which timeout is armed. */
export const enum Armed {
  None,
  Head,
  Idle,
  Body,
}

/** ConnectionTimers: see the file comment. */
export class ConnectionTimers {
  #armed = Armed.None;
  /** One Timeout per kind (indexed by Armed), and the length it was made with (a reload may change it). */
  readonly #timers: (NodeJS.Timeout | undefined)[] = [undefined, undefined, undefined, undefined];
  readonly #ms = [0, 0, 0, 0];
  readonly #fire = (kind: Armed): void => {
    if (kind !== this.#armed) return; // disarmed since it was armed
    this.#armed = Armed.None;
    this.onTimeout(kind);
  };

  /** onTimeout hears the armed timeout run out (it is disarmed by then). */
  constructor(readonly onTimeout: (kind: Armed) => void) {}

  /** armed is the timeout that counts now. */
  get armed(): Armed {
    return this.#armed;
  }

  /** arm starts timeout `kind` over, `ms` from now (0 or less: none), disarming any other. */
  arm(kind: Armed, ms: number): void {
    this.#armed = Armed.None;
    if (ms <= 0) return;
    const timer = this.#timers[kind];
    if (timer !== undefined && this.#ms[kind] === ms) timer.refresh();
    else {
      clearTimeout(timer);
      this.#timers[kind] = setTimeout(this.#fire, ms, kind).unref();
      this.#ms[kind] = ms;
    }
    this.#armed = kind;
  }

  /** restart starts the armed timeout over if it is `kind` (progress was made). */
  restart(kind: Armed): void {
    if (this.#armed === kind) this.#timers[kind]!.refresh();
  }

  /** disarm: no timeout counts until the next arm(). */
  disarm(): void {
    this.#armed = Armed.None;
  }

  /** stop clears every Timeout for good: the connection is over. */
  stop(): void {
    this.#armed = Armed.None;
    for (const timer of this.#timers) clearTimeout(timer);
  }
}
