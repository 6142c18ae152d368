/**
 * Every config problem is reported as `<json-path>: <reason>`, so an administrator can
 * find the offending value in lb.config.json at once. This file renders the paths the
 * same way everywhere: `backends[0].url`, `listen.tls.cert`, `errorPages.503`,
 * `affinity.partitions["acme.example"]`, and `(file)` for the file as a whole.
 */

/** A step into a JSON value: an object key or an array index. */
export type JsonPathSegment = string | number;

/** FILE_PATH names the whole file, for problems that have no narrower place (broken JSON, a missing file). */
export const FILE_PATH = '(file)';

const PLAIN_KEY = /^[A-Za-z0-9_$][A-Za-z0-9_$-]*$/;

/** formatJsonPath renders a path; keys that are not plain words are quoted in brackets. */
export function formatJsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else {
      const key = String(segment);
      out += PLAIN_KEY.test(key) ? (out === '' ? key : `.${key}`) : `[${JSON.stringify(key)}]`;
    }
  }
  return out === '' ? FILE_PATH : out;
}

/** problem formats one `<json-path>: <reason>` line. */
export function problem(path: readonly PropertyKey[], reason: string): string {
  return `${formatJsonPath(path)}: ${reason}`;
}
