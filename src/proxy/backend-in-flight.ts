/**
 * BackendInFlight counts the HTTP requests in flight per backend, which stateless placement
 * reads (src/routing/stateless.ts). It is its own class so that the request path and the
 * placement that reads it share one count without either owning the other's job.
 */

/** What is counted: an exchange, which remembers the backend it counts on (undefined: none). */
export interface InFlightEntry {
  inFlightOn: string | undefined;
}

/**
 * BackendInFlight holds the per-backend counts: counted from dispatch to the end of the
 * exchange, moved on a retry. Kept only while some path rule is stateless. WebSocket
 * tunnels are not counted: one open for hours is no request in flight, and would keep its
 * server from stateless calls all that time.
 */
export class BackendInFlight {
  readonly #counts = new Map<string, number>();

  /** of reads a backend's count (a bound function: it is handed to stateless placement). */
  readonly of = (backendId: string): number => this.#counts.get(backendId) ?? 0;

  /** enter counts the exchange in flight on a backend (and no longer on the one it left, after a retry). */
  enter(entry: InFlightEntry, backendId: string): void {
    this.leave(entry);
    this.#counts.set(backendId, (this.#counts.get(backendId) ?? 0) + 1);
    entry.inFlightOn = backendId;
  }

  /** leave stops counting the exchange (nothing if it was not counted). */
  leave(entry: InFlightEntry): void {
    const on = entry.inFlightOn;
    if (on === undefined) return;
    entry.inFlightOn = undefined;
    const n = (this.#counts.get(on) ?? 1) - 1;
    if (n > 0) this.#counts.set(on, n);
    else this.#counts.delete(on);
  }
}
