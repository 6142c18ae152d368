/**
 * The environment only holds strings, so `"port": "${PORT}"` would always be "expected a
 * number, got string". A value that was entirely one `"${NAME}"` reference is therefore
 * turned into a number or true/false where the schema, and only where the schema, wants
 * one (SPEC "Config file": any value may be `"${ENV_NAME}"`). The schema says where by
 * failing: parseConfigText coerces the values of the issues it got and parses again. A
 * literal `"8080"` in the file is never coerced (it stays an error that says to write a number).
 */
import type { z } from 'zod';
import type { WholeReference } from './env.js';
import { formatJsonPath, problem, type JsonPathSegment } from './json-path.js';

type Issue = z.core.$ZodIssue;
type Scalar = 'number' | 'boolean';

/** ScalarCoercion is the outcome of one coercion round. */
export interface ScalarCoercion {
  /** True when at least one value changed: parse again. */
  changed: boolean;
  /** `<json-path>: <reason>` for a variable whose text is no number (or no true/false) where one is needed. */
  problems: string[];
  /** Formatted paths of those values, so the schema's own message for them is not repeated. */
  failedPaths: string[];
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * coerceWholeReferences rewrites, in place in `value` (the substituted copy), every whole
 * `${NAME}` value whose issue says a number or true/false was expected (paths in `reported`
 * already have their problem).
 */
export function coerceWholeReferences(
  value: unknown,
  issues: readonly Issue[],
  references: ReadonlyMap<string, WholeReference>,
  reported: ReadonlySet<string>,
): ScalarCoercion {
  const result: ScalarCoercion = { changed: false, problems: [], failedPaths: [] };
  for (const issue of issues) {
    const key = formatJsonPath(issue.path);
    const reference = references.get(key);
    const want = wantedScalar(issue);
    if (reference === undefined || want === undefined || reported.has(key)) continue;
    const text = getAt(value, reference.path);
    if (typeof text !== 'string') continue;
    const converted = convert(text, want);
    if (converted === undefined) {
      const expected = want === 'number' ? 'a number' : 'true or false';
      result.problems.push(problem(reference.path, `expected ${expected}, but environment variable ${reference.name} is ${JSON.stringify(text)}`));
      result.failedPaths.push(key);
      continue;
    }
    setAt(value, reference.path, converted);
    result.changed = true;
  }
  return result;
}

/** literalScalarHint is the advice for a literal string that reads as a number or true/false where one is expected. */
export function literalScalarHint(input: unknown, expected: string): string {
  if (typeof input !== 'string') return '';
  const want = scalarOf(expected);
  if (want === undefined || convert(input, want) === undefined) return '';
  return ` (write ${input} without quotes)`;
}

function wantedScalar(issue: Issue): Scalar | undefined {
  if (issue.code === 'invalid_type') return scalarOf(issue.expected);
  if (issue.code === 'invalid_union') {
    for (const branch of issue.errors) {
      for (const inner of branch) {
        const want = inner.path.length === 0 ? wantedScalar(inner) : undefined;
        if (want !== undefined) return want;
      }
    }
  }
  return undefined;
}

function scalarOf(expected: string): Scalar | undefined {
  if (expected === 'number' || expected === 'int') return 'number';
  return expected === 'boolean' ? 'boolean' : undefined;
}

function convert(text: string, want: Scalar): number | boolean | undefined {
  if (want === 'boolean') return text === 'true' ? true : text === 'false' ? false : undefined;
  return JSON_NUMBER.test(text) ? Number(text) : undefined;
}

function getAt(value: unknown, path: readonly JsonPathSegment[]): unknown {
  let node = value;
  for (const step of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[step];
  }
  return node;
}

function setAt(value: unknown, path: readonly JsonPathSegment[], next: unknown): void {
  const parent = getAt(value, path.slice(0, -1));
  if (parent !== null && typeof parent === 'object') (parent as Record<string | number, unknown>)[path.at(-1)!] = next;
}
