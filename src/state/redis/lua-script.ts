/**
 * LuaScript runs a script by its SHA1 (EVALSHA: a few bytes on the wire instead of the
 * whole script each time) and sends the script itself only when Redis does not have it
 * yet (NOSCRIPT: a fresh Redis, a restart, a failover, SCRIPT FLUSH).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** LuaScript is one script of this directory; see the file comment. */
export class LuaScript {
  /** The SHA1 Redis knows the script by. */
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** run calls the script with `keys` and `args`, loading it on NOSCRIPT. */
  async run(client: Redis, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!/^NOSCRIPT\b/.test((err as Error).message)) throw err;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
