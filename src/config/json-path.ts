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
  return oneLine(`${formatJsonPath(path)}: ${reason}`);
}

/** Characters that would break a problem line or drive the terminal: control characters and line separators. */
const UNPRINTABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * oneLine escapes control characters and line separators (as `\n`, `\u001b`, ...), so that
 * a reason quoting what the file says (a key, a value, a regular expression) stays one line.
 */
export function oneLine(text: string): string {
  return text.replace(UNPRINTABLE, (ch) => (ch < ' ' ? JSON.stringify(ch).slice(1, -1) : `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`));
}
