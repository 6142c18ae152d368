/**
 * SeriesStore is the balancer's own short history for the dashboard's charts (GET
 * /api/series): per backend, and for the whole pool, one sample every `stepMs` of
 * sessions, WebSockets, requests/s and errors/s, for the last `points` samples (2 s x 450 =
 * 15 minutes). It keeps them in Float64Arrays used as rings, so sampling allocates nothing
 * per sample and memory is fixed per backend; no external store is needed for a first look.
 *
 * Every backend's ring shares one time axis (the store's sample count): a backend added
 * later has no value (null) for the samples before it existed, a removed one is dropped.
 * Rates come from the deltas of the cumulative counters between two samples; a counter
 * that goes backwards (a worker replaced) counts as no traffic, not as a negative rate.
 */

/** The fields of every sample, in ring order. */
export const SERIES_FIELDS = ['sessions', 'websockets', 'rps', 'eps'] as const;

/** SeriesField is one of SERIES_FIELDS. */
export type SeriesField = (typeof SERIES_FIELDS)[number];

/** The pool-wide series' key in `backends` of a window ('*' is no valid backend id). */
export const TOTAL_KEY = '*';

/** CounterSample is what the sampler reads per backend: current gauges and cumulative counters. */
export interface CounterSample {
  readonly sessions: number;
  readonly websockets: number;
  readonly requests: number;
  readonly errors: number;
}

/** SeriesWindow is the JSON of GET /api/series: oldest sample first; null where a backend did not exist. */
export interface SeriesWindow {
  /** Seconds between samples. */
  readonly step: number;
  /** ISO time of the first sample returned, or null when there is none yet. */
  readonly start: string | null;
  /** Number of samples in every array. */
  readonly points: number;
  readonly backends: Record<string, Record<SeriesField, (number | null)[]>>;
  /** The whole pool (sums over the backends). */
  readonly total: Record<SeriesField, (number | null)[]>;
}

interface Track {
  /** SERIES_FIELDS.length values per slot. */
  readonly values: Float64Array;
  /** Last cumulative requests and errors (NaN before the first sample). */
  lastRequests: number;
  lastErrors: number;
}

const WIDTH = SERIES_FIELDS.length;

/** SeriesStore holds the rings; see the file comment. */
export class SeriesStore {
  readonly #tracks = new Map<string, Track>();
  readonly #times: Float64Array;
  /** Samples taken so far (the next sample's number). */
  #count = 0;
  #lastAt = Number.NaN;

  constructor(
    readonly stepMs = 2000,
    readonly points = 450,
  ) {
    if (!Number.isInteger(points) || points < 2) throw new RangeError('SeriesStore needs at least 2 points');
    this.#times = new Float64Array(points);
  }

  /**
   * sample records one point at `now` (ms since the epoch) for every backend in `rows`;
   * backends not in `rows` are dropped.
   */
  sample(now: number, rows: ReadonlyMap<string, CounterSample>): void {
    const slot = this.#count % this.points;
    const seconds = Number.isNaN(this.#lastAt) ? Number.NaN : Math.max(0.001, (now - this.#lastAt) / 1000);
    for (const id of this.#tracks.keys()) if (!rows.has(id) && id !== TOTAL_KEY) this.#tracks.delete(id);
    let sessions = 0;
    let websockets = 0;
    let rps = 0;
    let eps = 0;
    for (const [id, row] of rows) {
      const track = this.#track(id);
      const r = rate(row.requests, track.lastRequests, seconds);
      const e = rate(row.errors, track.lastErrors, seconds);
      track.lastRequests = row.requests;
      track.lastErrors = row.errors;
      write(track.values, slot, row.sessions, row.websockets, r, e);
      sessions += row.sessions;
      websockets += row.websockets;
      rps += Number.isNaN(r) ? 0 : r;
      eps += Number.isNaN(e) ? 0 : e;
    }
    const first = Number.isNaN(seconds);
    write(this.#track(TOTAL_KEY).values, slot, sessions, websockets, first ? Number.NaN : rps, first ? Number.NaN : eps);
    this.#times[slot] = now;
    this.#lastAt = now;
    this.#count++;
  }

  /** size is the number of samples held (at most `points`). */
  get size(): number {
    return Math.min(this.#count, this.points);
  }

  /** window returns the samples of the last `seconds` (at most what is held), oldest first. */
  window(seconds: number): SeriesWindow {
    const wanted = Math.max(0, Math.floor((seconds * 1000) / this.stepMs));
    const n = Math.min(this.size, wanted);
    const firstIndex = this.#count - n;
    const backends: SeriesWindow['backends'] = {};
    let total: SeriesWindow['total'] = emptyFields();
    for (const [id, track] of this.#tracks) {
      const fields = emptyFields();
      for (let i = firstIndex; i < this.#count; i++) {
        const base = (i % this.points) * WIDTH;
        for (let f = 0; f < WIDTH; f++) {
          const v = track.values[base + f]!;
          fields[SERIES_FIELDS[f]!].push(Number.isNaN(v) ? null : round(v));
        }
      }
      if (id === TOTAL_KEY) total = fields;
      else backends[id] = fields;
    }
    const start = n === 0 ? null : new Date(this.#times[firstIndex % this.points]!).toISOString();
    return { step: this.stepMs / 1000, start, points: n, backends, total };
  }

  #track(id: string): Track {
    let track = this.#tracks.get(id);
    if (track === undefined) {
      track = { values: new Float64Array(this.points * WIDTH).fill(Number.NaN), lastRequests: Number.NaN, lastErrors: Number.NaN };
      this.#tracks.set(id, track);
    }
    return track;
  }
}

function write(values: Float64Array, slot: number, a: number, b: number, c: number, d: number): void {
  const base = slot * WIDTH;
  values[base] = a;
  values[base + 1] = b;
  values[base + 2] = c;
  values[base + 3] = d;
}

/** The per-second rate between two cumulative readings; NaN without a previous one, 0 if it went backwards. */
function rate(value: number, last: number, seconds: number): number {
  if (Number.isNaN(last) || Number.isNaN(seconds)) return Number.NaN;
  return value >= last ? (value - last) / seconds : 0;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

function emptyFields(): Record<SeriesField, (number | null)[]> {
  return { sessions: [], websockets: [], rps: [], eps: [] };
}
