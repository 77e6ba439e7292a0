import { createRequire } from 'node:module';
import { KimgError } from '../errors/index.js';
import { escapeTerminal } from '../gotext/index.js';

/** Output formats shared by every command that prints objects (kubectl/crictl conventions). */
export type OutputFormat = 'json' | 'yaml' | 'table' | 'wide';

export function parseOutputFormat(value: string, allowed: readonly OutputFormat[]): OutputFormat {
  if ((allowed as readonly string[]).includes(value)) return value as OutputFormat;
  throw new KimgError(
    'USAGE',
    `unknown output format ${JSON.stringify(value)}: use one of ${allowed.join(', ')}`,
    {
      input: value,
    },
  );
}

/** JSON the way kubectl prints it: two-space indent, trailing newline. */
export function toJson(data: unknown): string {
  return JSON.stringify(data, null, 2) + '\n';
}

// The YAML library is loaded on first use (it is CommonJS, so synchronously): most calls print a table
// or JSON, and compiling it at every start-up cost a fifth of Node's own start-up (docs/design/startup.md).
let yamlLib: typeof import('yaml') | undefined;

export function toYaml(data: unknown): string {
  yamlLib ??= createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yamlLib.stringify(data, { lineWidth: 0 });
}

/**
 * A kubectl-style table: upper-case headers, columns padded with three spaces, no borders.
 * Cells are stringified and escaped (`escapeTerminal`); null/undefined print as `<none>` like kubectl.
 */
export function toTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map(cellText))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
          .join('   ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function cellText(v: unknown): string {
  if (v === null || v === undefined || v === '') return '<none>';
  // Cells hold names, images and messages from pod specs and registries: one escaped line each.
  return escapeTerminal(String(v));
}
