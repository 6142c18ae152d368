/**
 * FileStateStore keeps the balancer's durable state (the generated cookie secret, admin
 * states, run-time backends) in one JSON file, and the state before the last save in
 * `<file>.prev`.
 *
 * A save: write a temp file in the same directory and fsync it; hard-link the current
 * file to a second temp name and rename that over `<file>.prev` (a copy where hard links
 * are not supported); rename the temp file over `<file>`; fsync the directory. Every
 * rename replaces a name atomically and every file it installs is complete, so a crash
 * (kill -9, power loss) at any moment leaves `<file>` as the old or the new state and
 * `<file>.prev` as an older complete state. The file is only rotated into `.prev` when it
 * is known good (loaded or written by this store): a damaged file never replaces the
 * good copy.
 *
 * load falls back to `.prev` when the file is missing or damaged (not JSON, not an
 * object, cut short): the damaged file is moved aside to `<file>.corrupt-<ms>`, the state
 * is restored from `.prev`, and `loadReport` says so in one sentence for the log. If
 * neither is usable, load throws a StateFileError that names the file and says what to do.
 */
import { copyFile, link, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
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

/** StateLoadReport says where the last load() took the state from, and what to tell the operator. */
export interface StateLoadReport {
  /** `file`: the state file; `prev`: the previous copy (the file was missing or damaged); `none`: a fresh state. */
  source: 'file' | 'prev' | 'none';
  /** One sentence per problem found (naming the files), for the log at warn level. */
  warnings: string[];
}

type ReadResult = { kind: 'ok'; data: StateData } | { kind: 'missing' } | { kind: 'damaged'; reason: string };

/** FileStateStore reads and atomically writes the state file. */
export class FileStateStore {
  readonly prevFile: string;
  loadReport: StateLoadReport = { source: 'none', warnings: [] };
  #writing: Promise<void> = Promise.resolve();
  /** The file on disk is a complete state this store loaded or wrote (only then is it rotated into .prev). */
  #fileGood = false;

  constructor(readonly file: string) {
    this.prevFile = `${file}.prev`;
  }

  /**
   * load returns the stored state, or a fresh one when neither the file nor its previous
   * copy exists. See the file comment for the fallback; `loadReport` tells what happened.
   */
  async load(): Promise<StateData> {
    this.loadReport = { source: 'none', warnings: [] };
    await this.#removeStaleTemps();
    const main = await readState(this.file);
    if (main.kind === 'ok') {
      this.#fileGood = true;
      this.loadReport.source = 'file';
      return main.data;
    }
    this.#fileGood = false;
    const prev = await readState(this.prevFile);
    if (main.kind === 'missing') {
      if (prev.kind === 'missing') return { version: 1 };
      if (prev.kind === 'damaged') {
        throw new StateFileError(
          `state file ${this.file} is missing and its previous copy ${this.prevFile} is damaged (${prev.reason}); restore ${this.file} from a backup, or delete ${this.prevFile} to start with a fresh state (admin states and run-time backends are then lost)`,
        );
      }
      await this.#restore(prev.data);
      this.loadReport.source = 'prev';
      this.loadReport.warnings.push(`state file ${this.file} is missing; loaded the previous copy ${this.prevFile} instead (the last admin change may be lost; delete both files to start fresh)`);
      return prev.data;
    }
    if (prev.kind !== 'ok') {
      const why = prev.kind === 'missing' ? `there is no previous copy ${this.prevFile}` : `its previous copy ${this.prevFile} is damaged too (${prev.reason})`;
      throw new StateFileError(
        `state file ${this.file} is damaged (${main.reason}) and ${why}; restore it from a backup, or move it away to start with a fresh state (admin states and run-time backends are then lost)`,
      );
    }
    const aside = `${this.file}.corrupt-${Date.now()}`;
    let moved = true;
    await rename(this.file, aside).catch(() => {
      moved = false;
    });
    await this.#restore(prev.data);
    this.loadReport.source = 'prev';
    this.loadReport.warnings.push(
      `state file ${this.file} is damaged (${main.reason}); loaded the previous good copy ${this.prevFile} instead (the last admin change may be lost)${moved ? `, and moved the damaged file to ${aside}` : ''}`,
    );
    return prev.data;
  }

  /** save writes the whole state atomically; concurrent saves are serialised in call order. */
  save(data: StateData): Promise<void> {
    const next = this.#writing.then(() => this.#write(data));
    this.#writing = next.catch(() => undefined);
    return next;
  }

  /** #restore rewrites the file from the previous copy (best effort: the next save writes it anyway). */
  async #restore(data: StateData): Promise<void> {
    await this.save(data).catch(() => undefined);
  }

  #tempName(what: string): string {
    return join(dirname(this.file), `.${basename(this.file)}.${what}${process.pid}.tmp`);
  }

  async #write(data: StateData): Promise<void> {
    const dir = dirname(this.file);
    const temp = this.#tempName('');
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(data, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      if (this.#fileGood) await this.#keepPrevious();
      await rename(temp, this.file);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    this.#fileGood = true;
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  /** #keepPrevious makes `.prev` the current file, atomically (rename of a complete link or copy). */
  async #keepPrevious(): Promise<void> {
    const temp = this.#tempName('prev.');
    await unlink(temp).catch(() => undefined);
    try {
      await link(this.file, temp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return; // nothing to keep (removed by hand since)
      // No hard links on this file system: a synced copy does the same, a little slower.
      await copyFile(this.file, temp);
      const handle = await open(temp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    try {
      await rename(temp, this.prevFile);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  }

  /** Temp files left by a process that died while saving (kill -9) are removed. */
  async #removeStaleTemps(): Promise<void> {
    const dir = dirname(this.file);
    const prefix = `.${basename(this.file)}.`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
      if (!/^(prev\.)?\d+$/.test(name.slice(prefix.length, -'.tmp'.length))) continue;
      await unlink(join(dir, name)).catch(() => undefined);
    }
  }
}

async function readState(file: string): Promise<ReadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw new StateFileError(`cannot read state file ${file}: ${(err as Error).message}`);
  }
  if (text.trim() === '') return { kind: 'damaged', reason: 'it is empty' };
  try {
    const data = JSON.parse(text) as StateData;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return { kind: 'damaged', reason: 'not a JSON object' };
    return { kind: 'ok', data: { ...data, version: 1 } };
  } catch (err) {
    return { kind: 'damaged', reason: `not valid JSON: ${(err as Error).message}` };
  }
}
