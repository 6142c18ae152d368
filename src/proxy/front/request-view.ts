/**
 * RawRequestView: what routing and the access log read of a request given as a raw header
 * list (every request and WebSocket handshake the raw listener parsed), gathered in one
 * pass with node:http's joining rules (repeated Cookie headers joined with "; ",
 * X-Forwarded-For with ", ", the first User-Agent / Referer / Host), so requests route on
 * the same facts as they did on the last release's node:http plane.
 */
import { lowerName } from '../codec/fields.js';
import type { RoutingView } from '../placement.js';

/** RawRequestView: see the file comment. */
export class RawRequestView implements RoutingView {
  host: string | undefined;
  cookie: string | undefined;
  forwardedFor: string | undefined;
  userAgent: string | undefined;
  referer: string | undefined;

  constructor(
    readonly peer: string | undefined,
    readonly url: string,
    readonly raw: readonly string[],
  ) {
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      // Only names of these lengths matter: skip the lower-casing of every other header.
      const n = name.length;
      if (n !== 4 && n !== 6 && n !== 7 && n !== 10 && n !== 15) continue;
      const value = raw[i + 1]!;
      switch (lowerName(name)) {
        case 'host':
          this.host ??= value;
          break;
        case 'cookie':
          this.cookie = this.cookie === undefined ? value : `${this.cookie}; ${value}`;
          break;
        case 'x-forwarded-for':
          this.forwardedFor = this.forwardedFor === undefined ? value : `${this.forwardedFor}, ${value}`;
          break;
        case 'user-agent':
          this.userAgent ??= value;
          break;
        case 'referer':
          this.referer ??= value;
          break;
      }
    }
  }

  /** headers: every header by lower-case name with its values in order (node's headersDistinct). */
  headers(): Record<string, string[]> {
    const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
    const raw = this.raw;
    for (let i = 0; i < raw.length; i += 2) (out[raw[i]!.toLowerCase()] ??= []).push(raw[i + 1]!);
    return out;
  }
}
