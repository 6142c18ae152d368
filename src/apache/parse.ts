/**
 * A reader for Apache httpd config text, as httpd itself reads it: one directive per
 * logical line, `\` at the end of a line continues it, `#` starts a comment line,
 * arguments are separated by blanks and may be quoted ("..." or '...'), directive and
 * section names are case-insensitive, `<Section args>` ... `</Section>` nest, and
 * `Define NAME VALUE` makes `${NAME}` stand for VALUE in later lines. The result is a tree
 * that keeps every line number, so that each later warning can name its line. Pure: no
 * file access, no knowledge of what a directive means.
 */

/** ImportWarning is one line of `import-apache` output on stderr. */
export interface ImportWarning {
  /** 1-based line of the directive the warning is about; absent for the file as a whole. */
  line?: number;
  message: string;
}

/** ApacheDirective is one directive line, e.g. `BalancerMember "http://10.0.0.11:8080" route=a`. */
export interface ApacheDirective {
  kind: 'directive';
  /** The name as written, for messages. */
  name: string;
  /** The name in lower case, for matching. */
  key: string;
  /** Arguments with quotes removed. */
  args: string[];
  line: number;
}

/** ApacheSection is a `<Name args>` ... `</Name>` block and what it holds. */
export interface ApacheSection {
  kind: 'section';
  name: string;
  key: string;
  args: string[];
  line: number;
  children: ApacheNode[];
}

export type ApacheNode = ApacheDirective | ApacheSection;

export interface ParsedApache {
  nodes: ApacheNode[];
  /** Problems of the text itself (unbalanced sections, unclosed quotes, trailing comments). */
  warnings: ImportWarning[];
}

interface LogicalLine {
  text: string;
  line: number;
}

/** parseApache turns config text into a tree of sections and directives. */
export function parseApache(text: string): ParsedApache {
  const warnings: ImportWarning[] = [];
  const root: ApacheSection = { kind: 'section', name: '', key: '', args: [], line: 0, children: [] };
  const stack: ApacheSection[] = [root];
  const defines = new Map<string, string>();

  for (const { text: raw, line } of logicalLines(text)) {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const top = stack[stack.length - 1]!;

    if (trimmed.startsWith('</')) {
      const name = trimmed.slice(2).replace(/>\s*$/, '').trim();
      const key = name.toLowerCase();
      const at = stack.findLastIndex((section, i) => i > 0 && section.key === key);
      if (at === -1) {
        warnings.push({ line, message: `</${name}> closes no open <${name}> section; ignored` });
        continue;
      }
      for (let i = stack.length - 1; i > at; i--) {
        const open = stack[i]!;
        warnings.push({ line: open.line, message: `<${open.name}> is not closed before </${name}> on line ${line}` });
      }
      stack.length = at;
      continue;
    }

    if (trimmed.startsWith('<')) {
      let inner = trimmed.slice(1);
      if (inner.endsWith('>')) inner = inner.slice(0, -1);
      else warnings.push({ line, message: `section line does not end with ">": ${trimmed}` });
      const words = tokenize(inner, line, warnings).map((word) => substitute(word, defines));
      const [name = '', ...args] = words;
      const section: ApacheSection = { kind: 'section', name, key: name.toLowerCase(), args, line, children: [] };
      top.children.push(section);
      stack.push(section);
      continue;
    }

    const words = tokenize(trimmed, line, warnings).map((word) => substitute(word, defines));
    const [name = '', ...args] = words;
    const directive: ApacheDirective = { kind: 'directive', name, key: name.toLowerCase(), args, line };
    if (directive.key === 'define' && args[0] !== undefined) defines.set(args[0], args[1] ?? '');
    if (directive.key === 'undefine' && args[0] !== undefined) defines.delete(args[0]);
    top.children.push(directive);
  }

  for (let i = stack.length - 1; i > 0; i--) {
    const open = stack[i]!;
    warnings.push({ line: open.line, message: `<${open.name}> is never closed (missing </${open.name}>)` });
  }
  return { nodes: root.children, warnings };
}

/** logicalLines joins `\`-continued lines; each logical line keeps the number of its first line. */
function logicalLines(text: string): LogicalLine[] {
  const physical = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  const out: LogicalLine[] = [];
  let pending: LogicalLine | undefined;
  physical.forEach((rawLine, index) => {
    const lineText = rawLine.replace(/[ \t]+$/, '');
    const continued = lineText.endsWith('\\');
    const part = continued ? lineText.slice(0, -1) : lineText;
    if (pending === undefined) pending = { text: part, line: index + 1 };
    else pending.text += ` ${part.trimStart()}`;
    if (!continued) {
      out.push(pending);
      pending = undefined;
    }
  });
  if (pending !== undefined) out.push(pending);
  return out;
}

/**
 * tokenize splits one logical line into words as httpd's ap_getword_conf does: blanks
 * separate, a word that starts with a quote runs to the matching quote (`\"` inside stands
 * for the quote). An unquoted word starting with `#` after the first word would be an
 * argument to httpd (which then refuses it); we treat it as the comment it was meant to be.
 */
function tokenize(text: string, line: number, warnings: ImportWarning[]): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const quote = text[i];
    if (quote === '"' || quote === "'") {
      let word = '';
      i++;
      let closed = false;
      while (i < text.length) {
        const c = text[i]!;
        if (c === '\\' && text[i + 1] === quote) {
          word += quote;
          i += 2;
          continue;
        }
        if (c === quote) {
          closed = true;
          i++;
          break;
        }
        word += c;
        i++;
      }
      if (!closed) warnings.push({ line, message: `unclosed ${quote} quote; read to the end of the line` });
      words.push(word);
      continue;
    }
    if (quote === '#' && words.length > 0) {
      warnings.push({ line, message: `"${text.slice(i)}" read as a comment (httpd allows comments only on their own line)` });
      break;
    }
    const start = i;
    while (i < text.length && !/\s/.test(text[i]!)) i++;
    words.push(text.slice(start, i));
  }
  return words;
}

/** substitute replaces `${NAME}` by the value of an earlier `Define NAME VALUE`; others stay. */
function substitute(word: string, defines: ReadonlyMap<string, string>): string {
  if (!word.includes('${') || defines.size === 0) return word;
  return word.replace(/\$\{([^}]+)\}/g, (match, name: string) => defines.get(name) ?? match);
}
