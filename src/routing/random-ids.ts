/**
 * RandomIds hands out random ids cut from a pool buffer refilled from the CSPRNG, as
 * crypto.randomUUID does: one randomFillSync per few hundred ids instead of one
 * randomBytes call each (which costs microseconds), since every new session takes one.
 * Each pool byte is used once.
 */
import { randomFillSync } from 'node:crypto';

/** How many ids one refill of the pool serves. */
const IDS_PER_FILL = 256;

/** RandomIds mints base64url ids of a fixed number of random bytes. */
export class RandomIds {
  readonly #bytes: number;
  readonly #pool: Buffer;
  #offset: number;

  constructor(bytes: number) {
    this.#bytes = bytes;
    this.#pool = Buffer.alloc(bytes * IDS_PER_FILL);
    this.#offset = this.#pool.length;
  }

  /** next returns a fresh id: `bytes` random bytes in base64url. */
  next(): string {
    if (this.#offset === this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const start = this.#offset;
    this.#offset += this.#bytes;
    return this.#pool.toString('base64url', start, this.#offset);
  }
}
