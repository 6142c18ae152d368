/**
 * Zod's own messages ("Invalid input: expected number, received string") are written for
 * developers. An administrator editing lb.config.json gets `<json-path>: <reason>` lines
 * instead: `listen.port: expected a number, got string`, `affinity.mode: expected one of
 * "session", "partition"`, `backends[0].wieght: unknown key (did you mean "weight"?)`.
 * friendlyErrorMap words each issue while zod still knows the schema that raised it;
 * issuesToProblems then turns the final issues into lines (one per unknown key, the best
 * branch of a union).
 */
import { z } from 'zod';
import { closest } from './suggest.js';
import { formatJsonPath, problem } from './json-path.js';
import { literalScalarHint } from './env-scalars.js';

type Issue = z.core.$ZodIssue;
type RawIssue = z.core.$ZodRawIssue;

/** Marks a union issue that has no message of its own: its branches are examined instead. */
const UNION = '\u0000union';
/** At most this many known keys are listed when an unknown key resembles none of them. */
const LIST_LIMIT = 10;

interface UnknownKeys {
  reasons: string[];
  known: string[];
}

/** friendlyErrorMap is the per-parse zod error map; schema-level messages still win over it. */
export const friendlyErrorMap: z.core.$ZodErrorMap = (iss: RawIssue) => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'missing (required)';
      // JSON numbers beyond ~1.8e308 (such as 1e309) parse as Infinity, which is no number to zod.
      if (typeof iss.input === 'number' && !Number.isFinite(iss.input)) return `expected ${typeName(iss.expected)}, got a number too large to represent`;
      return `expected ${typeName(iss.expected)}, got ${iss.expected === 'int' && typeof iss.input === 'number' ? iss.input : describe(iss.input)}${literalScalarHint(iss.input, iss.expected)}`;
    case 'invalid_value':
      return expectedValues(iss.values, iss.input);
    case 'unrecognized_keys':
      // Records (errorPages) have a closed list of keys, not words to guess at: list them.
      return JSON.stringify(unknownKeys(iss.keys, knownKeys(iss.inst), iss.input, !(iss.inst instanceof z.ZodRecord)));
    case 'too_small':
      return tooSmall(iss.origin, Number(iss.minimum), iss.inclusive !== false);
    case 'too_big':
      return tooBig(iss.origin, Number(iss.maximum), iss.inclusive !== false);
    case 'invalid_format':
      if (iss.format === 'starts_with') return `must start with ${JSON.stringify(iss['prefix'])}`;
      if (iss.format === 'regex') return `does not match the pattern ${iss.pattern ?? ''}`;
      return `is not a valid ${iss.format}`;
    case 'not_multiple_of':
      return `must be a multiple of ${iss.divisor}`;
    case 'invalid_key':
      return `invalid key: ${iss.issues.map((inner) => inner.message).join('; ')}`;
    case 'invalid_union':
      return UNION;
    default:
      return undefined;
  }
};

/** issuesToProblems renders the final issues of a failed parse, skipping paths already reported. */
export function issuesToProblems(issues: readonly Issue[], skip: ReadonlySet<string> = new Set(), prefix: readonly PropertyKey[] = []): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (skip.has(formatJsonPath(path))) continue;
    if (issue.code === 'unrecognized_keys') {
      const parsed = parseUnknownKeys(issue.message, issue.keys.length);
      issue.keys.forEach((key, i) => out.push(problem([...path, key], parsed?.reasons[i] ?? 'unknown key')));
    } else if (issue.code === 'invalid_union' && issue.message === UNION) {
      out.push(...unionProblems(issue, path, skip));
    } else {
      out.push(problem(path, issue.message));
    }
  }
  return [...new Set(out)];
}

/**
 * A value matched no branch of a union. Report the branch the value was evidently meant
 * for (right type, right keys), or else say which forms are accepted.
 */
function unionProblems(issue: Extract<Issue, { code: 'invalid_union' }>, path: PropertyKey[], skip: ReadonlySet<string>): string[] {
  const branches = issue.errors;
  const wrongType = (branch: Issue[]): boolean => branch.some((i) => i.code === 'invalid_type' && i.path.length === 0);
  const wrongKeys = (branch: Issue[]): boolean => branch.some((i) => i.code === 'unrecognized_keys' && i.path.length === 0);
  const typed = branches.filter((branch) => !wrongType(branch));
  if (typed.length === 0) {
    const expected = new Set(branches.flatMap((branch) => branch.filter((i) => i.code === 'invalid_type').map((i) => typeName((i as { expected: string }).expected))));
    return [problem(path, `expected ${[...expected].join(' or ') || 'another value'}, got ${describe(issue.input)}`)];
  }
  const fitting = typed.filter((branch) => !wrongKeys(branch));
  if (fitting.length === 0) {
    const forms = typed.map((branch) => {
      const own = branch.find((i) => i.code === 'unrecognized_keys' && i.path.length === 0);
      const known = own ? (parseUnknownKeys(own.message, 0)?.known ?? []) : [];
      return `an object with ${known.map((k) => JSON.stringify(k)).join(', ')}`;
    });
    return [problem(path, `expected either ${forms.join(' or ')}`)];
  }
  const best = fitting.reduce((a, b) => (b.length < a.length ? b : a));
  return issuesToProblems(best, skip, path);
}

function parseUnknownKeys(message: string, count: number): UnknownKeys | undefined {
  try {
    const parsed = JSON.parse(message) as UnknownKeys;
    return Array.isArray(parsed.reasons) && parsed.reasons.length >= count ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function knownKeys(inst: unknown): string[] {
  if (inst instanceof z.ZodObject) return Object.keys(inst.shape);
  if (inst instanceof z.ZodRecord) {
    const keyType: unknown = inst.keyType;
    if (keyType instanceof z.ZodEnum) return keyType.options.map(String);
  }
  return [];
}

function unknownKeys(keys: readonly string[], known: string[], input: unknown, guess: boolean): UnknownKeys {
  const present = new Set(input !== null && typeof input === 'object' ? Object.keys(input) : []);
  const unused = known.filter((key) => !present.has(key));
  const listed = known.length > 0 && known.length <= LIST_LIMIT ? ` (expected one of ${quoteList(known)})` : '';
  const reasons = keys.map((key) => {
    const meant = guess ? closest(key, unused) : undefined;
    return `unknown key${meant === undefined ? listed : ` (did you mean ${JSON.stringify(meant)}?)`}`;
  });
  return { reasons, known };
}

function expectedValues(values: readonly unknown[], input: unknown): string {
  if (values.length === 1) return `expected ${JSON.stringify(values[0])}, got ${JSON.stringify(input) ?? describe(input)}`;
  const guess = typeof input === 'string' ? closest(input, values.filter((v): v is string => typeof v === 'string')) : undefined;
  return `expected one of ${quoteList(values)}${guess === undefined ? '' : ` (did you mean ${JSON.stringify(guess)}?)`}`;
}

function tooSmall(origin: string, minimum: number, inclusive: boolean): string {
  if (origin === 'string') return minimum <= 1 ? 'must not be empty' : `must be at least ${minimum} characters long`;
  if (origin === 'array') return minimum <= 1 ? 'must not be empty' : `must have at least ${minimum} entries`;
  return inclusive ? `must be at least ${minimum}` : `must be greater than ${minimum}`;
}

function tooBig(origin: string, maximum: number, inclusive: boolean): string {
  if (origin === 'string') return `must be at most ${maximum} characters long`;
  if (origin === 'array') return `must have at most ${maximum} entries`;
  return inclusive ? `must be at most ${maximum}` : `must be less than ${maximum}`;
}

function typeName(expected: string): string {
  switch (expected) {
    case 'int':
      return 'an integer';
    case 'array':
    case 'tuple':
      return 'a list';
    case 'object':
    case 'record':
    case 'map':
      return 'an object';
    case 'boolean':
      return 'true or false';
    default:
      return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
  }
}

/** describe names the JSON type of a value the way the file spells it. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function quoteList(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}
