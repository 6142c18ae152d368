/**
 * FileStateStore keeps the balancer's durable state (the generated cookie secret now;
 * admin states and partitions later) in one JSON file. Writes are atomic: a temp file in
 * the same directory, fsync, rename over the old one, fsync of the directory, so a crash
 * at any moment leaves either the old or the new file, never a torn one.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** StateData is the content of the state file. Unknown fields are kept as they are. */
export interface StateData {
  version: 1;
  cookieSecret?: string;
  [key: string]: unknown;
}

/** StateFileError says the state file exists but cannot be used, in one sentence. */
export class StateFileError extends Error {
  override name = 'StateFileError';
}

/** FileStateStore reads and atomically writes the state file. */
export class FileStateStore {
  #writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** load returns the stored state, or a fresh one when the file does not exist yet. */
  async load(): Promise<StateData> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1 };
      throw new StateFileError(`cannot read state file ${this.file}: ${(err as Error).message}`);
    }
    try {
      const data = JSON.parse(text) as StateData;
      if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not a JSON object');
      return { ...data, version: 1 };
    } catch (err) {
      throw new StateFileError(`state file ${this.file} is not valid JSON (${(err as Error).message}); move it away or fix it`);
    }
  }

  /** save writes the whole state atomically; concurrent saves are serialised in call order. */
  save(data: StateData): Promise<void> {
    const next = this.#writing.then(() => this.#write(data));
    this.#writing = next.catch(() => undefined);
    return next;
  }

  async #write(data: StateData): Promise<void> {
    const dir = dirname(this.file);
    const temp = join(dir, `.${basename(this.file)}.${process.pid}.tmp`);
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(data, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temp, this.file);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}
