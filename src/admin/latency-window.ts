/**
 * LatencyWindow answers "how slow is this backend lately" for the dashboard (the p95Ms of
 * GET /api/backends) from the same bucket counts as the /metrics latency histogram, without
 * keeping single observations: per backend one Float64Array of cumulative bucket counts,
 * and two marks of it taken a window apart. The p95 is read from the counts since the older
 * mark, so it covers the last one to two windows (60-120 s by default), not the whole
 * uptime (longer when nobody asked for a while), and is interpolated inside its bucket (as Prometheus' histogram_quantile does).
 */
import { LATENCY_BUCKETS } from './latency-buckets.js';

interface Track {
  readonly counts: Float64Array;
  older: Float64Array;
  newer: Float64Array;
  newerAt: number;
}

/** LatencyWindow keeps the windowed counts; see the file comment. */
export class LatencyWindow {
  readonly #tracks = new Map<string, Track>();

  constructor(
    readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** observe counts one request of `seconds`. */
  observe(backendId: string, seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.observeBucket(backendId, i);
  }

  /** observeBucket counts one request whose bucket (index into LATENCY_BUCKETS, or its length for +Inf) is known. */
  observeBucket(backendId: string, bucket: number): void {
    this.#track(backendId).counts[bucket]!++;
  }

  /** add counts a worker's bucket deltas (per LATENCY_BUCKETS bucket, then +Inf). */
  add(backendId: string, buckets: readonly number[]): void {
    const counts = this.#track(backendId).counts;
    for (let i = 0; i < counts.length; i++) counts[i]! += buckets[i] ?? 0;
  }

  /** p95Ms is the 95th percentile latency (ms) of the backend's recent requests, or null without any. */
  p95Ms(backendId: string): number | null {
    const track = this.#tracks.get(backendId);
    if (track === undefined) return null;
    this.#rotate(track);
    const n = track.counts.length;
    let total = 0;
    for (let i = 0; i < n; i++) total += track.counts[i]! - track.older[i]!;
    if (total <= 0) return null;
    const rank = 0.95 * total;
    let cumulative = 0;
    for (let i = 0; i < n; i++) {
      const inBucket = track.counts[i]! - track.older[i]!;
      if (cumulative + inBucket < rank) {
        cumulative += inBucket;
        continue;
      }
      const lower = i === 0 ? 0 : LATENCY_BUCKETS[i - 1]!;
      if (i === LATENCY_BUCKETS.length) return lower * 1000; // +Inf: the largest bound is all that is known
      const upper = LATENCY_BUCKETS[i]!;
      return Math.round((lower + (upper - lower) * ((rank - cumulative) / inBucket)) * 1000 * 10) / 10;
    }
    return null;
  }

  /** forget drops a removed backend. */
  forget(backendId: string): void {
    this.#tracks.delete(backendId);
  }

  #track(id: string): Track {
    let track = this.#tracks.get(id);
    if (track === undefined) {
      const size = LATENCY_BUCKETS.length + 1;
      track = { counts: new Float64Array(size), older: new Float64Array(size), newer: new Float64Array(size), newerAt: this.now() };
      this.#tracks.set(id, track);
    }
    return track;
  }

  /** Once a window has passed since the newer mark, it becomes the older one and a new mark is taken now. */
  #rotate(track: Track): void {
    const now = this.now();
    if (now - track.newerAt < this.windowMs) return;
    // Nobody asked for longer than a window: the window read now is longer than usual, never empty by mistake.
    track.older.set(track.newer);
    track.newer.set(track.counts);
    track.newerAt = now;
  }
}
