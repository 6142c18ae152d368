/**
 * Reading lb.config.json text. JSON.parse says where it failed as a character offset (or
 * not at all); an administrator with an editor wants a line and a column, and a hint for
 * the two classic hand-editing mistakes (a trailing comma, a comment).
 */
import { FILE_PATH, oneLine } from './json-path.js';

/** JsonText is the parsed value, or one `(file): invalid JSON at line L, column C: ...` problem. */
export type JsonText = { ok: true; value: unknown } | { ok: false; problem: string };

/**
 * MAX_DEPTH bounds how deeply arrays and objects may nest. lb.config.json needs 5 levels;
 * what reads the parsed value (and findSyntaxError) recurses, so thousands of levels
 * would overflow the stack instead of failing with a line and a column.
 */
export const MAX_DEPTH = 64;

/** parseJsonText parses text (a leading byte-order mark is ignored) and locates syntax errors. */
export function parseJsonText(text: string): JsonText {
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const tooDeep = findExcessiveNesting(source);
  const nestedTooDeep = (offset: number): JsonText => {
    const where = lineColumnAt(source, offset);
    return { ok: false, problem: `${FILE_PATH}: invalid JSON at line ${where.line}, column ${where.column}: nested more than ${MAX_DEPTH} levels deep` };
  };
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (err) {
    const message = (err as Error).message;
    // Whichever comes first is reported; a syntax error without a position is only looked
    // for (findSyntaxError recurses) when the nesting is within bounds.
    const position = /at position (\d+)/.exec(message);
    if (tooDeep !== undefined && !(position && Number(position[1]) < tooDeep)) return nestedTooDeep(tooDeep);
    return { ok: false, problem: describeSyntaxError(source, message) };
  }
  return tooDeep === undefined ? { ok: true, value } : nestedTooDeep(tooDeep);
}

function describeSyntaxError(text: string, message: string): string {
  const lineCol = /\(line (\d+) column (\d+)\)/.exec(message);
  const position = /at position (\d+)/.exec(message);
  let where: { line: number; column: number };
  let offset: number;
  if (position) {
    offset = Number(position[1]);
    where = lineColumnAt(text, offset);
  } else {
    offset = findSyntaxError(text);
    where = lineColumnAt(text, offset);
  }
  if (lineCol) where = { line: Number(lineCol[1]), column: Number(lineCol[2]) };
  return oneLine(`${FILE_PATH}: invalid JSON at line ${where.line}, column ${where.column}: ${cleanMessage(message)}${hint(text, offset)}`);
}

/** findExcessiveNesting returns the offset of the first bracket that opens level MAX_DEPTH + 1, if any. */
function findExcessiveNesting(text: string): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > MAX_DEPTH) return i;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return undefined;
}

/** lineColumnAt turns a character offset into a 1-based line and column. */
export function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1 };
}

function cleanMessage(message: string): string {
  const text = message
    .replace(/^(Unexpected token .+?), (?:\.\.\.)?".*" is not valid JSON$/s, '$1')
    .replace(/\s*\(line \d+ column \d+\)/, '')
    .replace(/ in JSON at position \d+/, '')
    .replace(/ at position \d+/, '')
    .trim();
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function hint(text: string, offset: number): string {
  const rest = text.slice(offset);
  if (rest.startsWith('//') || rest.startsWith('/*')) return ' (JSON does not allow comments)';
  if ((rest.startsWith('}') || rest.startsWith(']')) && text.slice(0, offset).trimEnd().endsWith(',')) {
    return ' (JSON does not allow a comma before a closing bracket)';
  }
  return '';
}

/**
 * findSyntaxError returns the offset of the first JSON syntax error in text, for JSON.parse
 * messages that carry no position. It only locates; it never builds values.
 */
export function findSyntaxError(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxAt(i);
  };
  const space = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const string = (): void => {
    i++;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === '"') {
        i++;
        return;
      }
      if (ch === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
          continue;
        }
        if (i >= text.length || !'"\\/bfnrt'.includes(text[i]!)) fail();
      } else if (ch < ' ') fail();
      i++;
    }
    fail();
  };
  const sequence = (close: string, item: () => void): void => {
    i++;
    space();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      item();
      space();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === close) {
        i++;
        return;
      }
      fail();
    }
  };
  const value = (): void => {
    space();
    const ch = text[i];
    if (ch === '{') {
      sequence('}', () => {
        space();
        if (text[i] !== '"') fail();
        string();
        space();
        if (text[i] !== ':') fail();
        i++;
        value();
      });
    } else if (ch === '[') sequence(']', value);
    else if (ch === '"') string();
    else {
      const literal = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null/y;
      literal.lastIndex = i;
      if (!literal.exec(text)) fail();
      i = literal.lastIndex;
    }
  };
  try {
    value();
    space();
    if (i < text.length) fail();
    return text.length;
  } catch (err) {
    if (err instanceof SyntaxAt) return err.offset;
    throw err;
  }
}

class SyntaxAt {
  constructor(readonly offset: number) {}
}
