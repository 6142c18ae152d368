/**
 * followChannel is how a Redis block keeps its local copy in step with the shared one:
 * each message on `channel` as it comes, and a full `resync` when the subscription is made
 * again, when the connection comes back, and every `everyMs`, so a missed message cannot
 * leave the copy wrong for long (SPEC "Several balancers"). The partitions and the pool
 * state follow their channels this way.
 */
import type { RedisConnection } from './redis-connection.js';

/** A channel to follow: its messages, and the full read that repairs whatever was missed. */
export interface FollowedChannel {
  readonly channel: string;
  onMessage(message: string): void;
  /** Reads the whole shared state again; a failure is left to the next trigger. */
  resync(): Promise<unknown>;
  readonly everyMs: number;
}

/** followChannel subscribes, resyncs once if Redis is up, and resolves with the function that stops the rest. */
export async function followChannel(conn: RedisConnection, follow: FollowedChannel): Promise<() => void> {
  const resync = (): void => void follow.resync().catch(() => undefined);
  await conn.subscribe(follow.channel, (message) => follow.onMessage(message));
  const stops = [conn.onResubscribed(resync), conn.onState((state) => state.up && resync())];
  if (conn.state.up) await follow.resync().catch(() => undefined);
  const timer = setInterval(resync, follow.everyMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    for (const stop of stops) stop();
  };
}
