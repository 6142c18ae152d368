/**
 * EventLog keeps the latest backend state changes and admin actions for the dashboard and
 * `servoy-lb events` (GET /api/events). It lives in the primary (the one place the pool
 * changes and the admin API runs) and is bounded: a ring of the last `capacity` events, so
 * a flapping backend or a script calling the API in a loop never grows memory.
 */
import type { SharedEvent } from '../state/state-store.js';

/** AdminEvent is one state change ('state', from the pool) or admin action ('admin', from the API). */
export interface AdminEvent {
  /** ISO time. */
  readonly time: string;
  /** The backend concerned; null for calls about no single backend (reload). */
  readonly backend: string | null;
  /** State before (a backend state, 'absent'), or null when the call does not change one. */
  readonly from: string | null;
  readonly to: string | null;
  /** Why, in a few words ("health check failed", "admin drain"); for admin actions: what and by whom. */
  readonly cause: string;
  readonly kind: 'state' | 'admin';
  /** Admin actions: who asked (the peer address of the admin call). */
  readonly who?: string;
  /** With a shared store (state.redis): the instance that made the event. */
  readonly instance?: string;
}

/** EventList is what /api/events answers: the events, and why the pool's shared ones are missing, if they are. */
export interface EventList {
  readonly events: AdminEvent[];
  /** One sentence when the shared events could not be read: only this instance's are listed. */
  readonly sharedError?: string;
}

/**
 * mergeSharedEvents is this instance's events (tagged with `instance`) and the admin actions
 * other instances shared, newest first, at most `limit`.
 */
export function mergeSharedEvents(local: readonly AdminEvent[], shared: readonly SharedEvent[], instance: string, limit: number): AdminEvent[] {
  const others: AdminEvent[] = shared.map((e) => ({
    time: new Date(e.at).toISOString(),
    backend: e.backend,
    from: e.from ?? null,
    to: e.to ?? null,
    cause: e.who === undefined ? `admin ${e.what}` : `admin ${e.what} by ${e.who}`,
    kind: 'admin',
    ...(e.who === undefined ? {} : { who: e.who }),
    ...(e.instance === undefined ? {} : { instance: e.instance }),
  }));
  const all = [...local.map((e) => ({ ...e, instance })), ...others];
  // Stable: equal times keep local events first, each list in its own (newest-first) order.
  return all
    .map((e, i) => ({ e, i, t: Date.parse(e.time) }))
    .sort((a, b) => b.t - a.t || a.i - b.i)
    .slice(0, Math.max(0, limit))
    .map((x) => x.e);
}

/** How many events the primary keeps by default. */
export const EVENTS_KEPT = 1000;

/** EventLog is a bounded ring of AdminEvents; see the file comment. */
export class EventLog {
  readonly #ring: (AdminEvent | undefined)[];
  /** Index the next event goes to. */
  #next = 0;
  #size = 0;

  constructor(readonly capacity = EVENTS_KEPT) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('EventLog capacity must be a whole number >= 1');
    this.#ring = new Array<AdminEvent | undefined>(capacity);
  }

  /** add keeps an event, dropping the oldest when full. */
  add(event: AdminEvent): void {
    this.#ring[this.#next] = event;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** latest returns up to `limit` events, newest first. */
  latest(limit: number): AdminEvent[] {
    const n = Math.min(Math.max(0, limit), this.#size);
    const out: AdminEvent[] = [];
    for (let i = 1; i <= n; i++) out.push(this.#ring[(this.#next - i + this.capacity) % this.capacity]!);
    return out;
  }

  /** size is the number of events kept. */
  get size(): number {
    return this.#size;
  }
}
