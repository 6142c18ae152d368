/**
 * `${ENV_NAME}` substitution (SPEC "Config file": any string value may read the
 * environment at load time). Secrets such as the admin token and the cookie secret stay
 * out of the file this way. Substitution runs on the parsed JSON, before validation, so
 * the substituted value is checked like any other; it works for a whole value
 * (`"${SERVOY_LB_TOKEN}"`) and inside one (`"redis://${REDIS_HOST}:6379/0"`). Keys are
 * never substituted. `$${` stands for a literal `${`.
 */
import { formatJsonPath, oneLine, type JsonPathSegment } from './json-path.js';

/** EnvSubstitution is the substituted JSON plus one problem per unset or malformed reference (and per `__proto__` key). */
export interface EnvSubstitution {
  value: unknown;
  /** `<json-path>: <reason>` lines. */
  problems: string[];
  /** Paths (formatted) of values that could not be substituted, so later checks can skip them. */
  failedPaths: Set<string>;
  /**
   * Values that were entirely one `"${NAME}"` reference, by formatted path: only these may
   * become a number or true/false where the schema wants one (the environment only has strings).
   */
  wholeReferences: Map<string, WholeReference>;
}

/** WholeReference is a value that was exactly `"${NAME}"`: where it is and which variable filled it. */
export interface WholeReference {
  readonly path: readonly JsonPathSegment[];
  readonly name: string;
}

const WHOLE_REFERENCE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** substituteEnv returns a copy of value with every `${NAME}` in its strings replaced from env. */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv): EnvSubstitution {
  const problems: string[] = [];
  const failedPaths = new Set<string>();
  const wholeReferences = new Map<string, WholeReference>();
  const walk = (node: unknown, path: JsonPathSegment[]): unknown => {
    if (typeof node === 'string') {
      const whole = WHOLE_REFERENCE.exec(node);
      if (whole !== null && env[whole[1]!] !== undefined) wholeReferences.set(formatJsonPath(path), { path, name: whole[1]! });
      return substituteString(node, env, path, problems, failedPaths);
    }
    if (Array.isArray(node)) return node.map((item, index) => walk(item, [...path, index]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(node)) {
        // JSON.parse keeps "__proto__" as a plain key, but assigning it would swap the copy's
        // prototype (its keys would then pass for settings) and zod silently skips it in
        // records: no setting is called that, so it is reported here and left out.
        if (key === '__proto__') {
          const where = formatJsonPath([...path, key]);
          problems.push(`${where}: unknown key ("__proto__" is never a setting)`);
          failedPaths.add(where);
          continue;
        }
        out[key] = walk(item, [...path, key]);
      }
      return out;
    }
    return node;
  };
  return { value: walk(value, []), problems, failedPaths, wholeReferences };
}

function substituteString(
  text: string,
  env: NodeJS.ProcessEnv,
  path: JsonPathSegment[],
  problems: string[],
  failedPaths: Set<string>,
): string {
  if (!text.includes('${')) return text;
  return text.replace(REFERENCE, (match, name: string | undefined) => {
    if (match === '$${') return '${';
    const fail = (reason: string): string => {
      const where = formatJsonPath(path);
      const line = oneLine(`${where}: ${reason}`);
      if (!problems.includes(line)) problems.push(line);
      failedPaths.add(where);
      return match;
    };
    if (name === undefined || !ENV_NAME.test(name)) {
      return fail(`${JSON.stringify(match)} is not a valid environment variable reference (use letters, digits and "_"; write "$\${" for a literal "\${")`);
    }
    const found = env[name];
    return found === undefined ? fail(`environment variable ${name} is not set`) : found;
  });
}
