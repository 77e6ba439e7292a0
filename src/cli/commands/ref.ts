/**
 * `kimg ref parse REF...`: parse, validate and normalize image references (src/reference) and print one
 * result per input, in order. A thin face: the library decides everything; this file only reads inputs,
 * renders and sets the exit status.
 *
 *     kimg ref parse busybox registry.k8s.io/pause:3.10 -o json
 *     printf 'busybox\nnginx:1.27\n' | kimg ref parse - --default-registry registry.example:5000
 *
 * `-o json` prints ONE array with, per input, either
 * `{"input","valid":true,"name","domain","path","tag","digest","familiar","canonical"}` (tag/digest null
 * when absent) or `{"input","valid":false,"error":{"code","message"}}`. The exit status is 0 when every
 * input is valid, else the status of the first invalid input's error code (2 for every reference code).
 */
import type { Command } from 'commander';
import type { Readable } from 'node:stream';
import { KimgError } from '../../errors/index.js';
import { tryParseReference, type ParseOptions } from '../../reference/index.js';
import type { CliContext } from '../context.js';
import { EXIT_STATUS_BY_CODE } from '../exit-codes.js';
import { parseOutputFormat, toJson, toTable, toYaml } from '../output.js';
import type { RegisterCommand } from './register.js';
import { escapeTerminal } from '../../gotext/index.js';

/** The most `-` reads from stdin: far above any real list of references, below trouble. */
const MAX_STDIN_BYTES = 256 * 1024 * 1024;

/** One line of `kimg ref parse` output. */
export type RefParseRow =
  | {
      input: string;
      valid: true;
      name: string;
      domain: string;
      path: string;
      tag: string | null;
      digest: string | null;
      familiar: string;
      canonical: string;
    }
  | { input: string; valid: false; error: { code: string; message: string } };

/** Parses each input; never throws for an invalid reference (only for a bad `defaultRegistry`). */
export function parseRefs(
  inputs: readonly string[],
  opts: ParseOptions,
): { rows: RefParseRow[]; status: number } {
  let status = 0;
  const rows = inputs.map((input): RefParseRow => {
    const r = tryParseReference(input, opts);
    if (!r.ok) {
      if (status === 0) status = EXIT_STATUS_BY_CODE[r.error.code];
      return { input, valid: false, error: { code: r.error.code, message: r.error.message } };
    }
    const ref = r.reference;
    return {
      input,
      valid: true,
      name: ref.name,
      domain: ref.domain,
      path: ref.path,
      tag: ref.tag ?? null,
      digest: ref.digest ?? null,
      familiar: ref.familiar,
      canonical: ref.canonical,
    };
  });
  return { rows, status };
}

/** Reads stdin for `-`: one reference per line (`\n` or `\r\n`); a final newline ends the last line. */
async function readStdinLines(stream: Readable): Promise<string[]> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > MAX_STDIN_BYTES) {
      throw new KimgError(
        'INVALID_ARGUMENT',
        `standard input is larger than ${MAX_STDIN_BYTES} bytes: pass fewer references`,
      );
    }
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** A table cell for an input: escaped (NUL, control characters) and cut to 60 characters. */
function displayInput(s: string): string {
  const q = JSON.stringify(s.length > 60 ? s.slice(0, 60) : s).slice(1, -1) + (s.length > 60 ? '…' : '');
  return q === '' ? '""' : q;
}

async function run(refs: string[], options: { output: string; defaultRegistry?: string }, ctx: CliContext) {
  const format = parseOutputFormat(options.output, ['json', 'yaml', 'table']);
  const inputs: string[] = [];
  let usedStdin = false;
  for (const r of refs) {
    if (r !== '-') {
      inputs.push(r);
      continue;
    }
    if (usedStdin)
      throw new KimgError('USAGE', '"-" (read references from standard input) may be given only once');
    usedStdin = true;
    const stdin = ctx.stdin ?? process.stdin;
    inputs.push(...(await readStdinLines(stdin)));
  }
  const opts: ParseOptions =
    options.defaultRegistry === undefined ? {} : { defaultRegistry: options.defaultRegistry };
  const { rows, status } = parseRefs(inputs, opts);
  if (format === 'json') ctx.stdout.write(toJson(rows));
  else if (format === 'yaml') ctx.stdout.write(toYaml(rows));
  else {
    ctx.stdout.write(
      toTable(
        ['input', 'canonical', 'familiar', 'error'],
        rows.map((r) =>
          r.valid
            ? [displayInput(r.input), r.canonical, r.familiar, null]
            : [displayInput(r.input), null, null, r.error.code],
        ),
      ),
    );
    for (const r of rows)
      if (!r.valid) ctx.stderr.write(`error: ${escapeTerminal(r.error.message)} (${r.error.code})\n`);
  }
  ctx.exitStatus = status;
}

export const registerRef: RegisterCommand = (program: Command, ctx: CliContext) => {
  const ref = program.command('ref').description('image references: parse, validate and normalize');
  ref
    .command('parse')
    .description(
      'parse image references like the kubelet and containerd (distribution/reference ParseNormalizedNamed) ' +
        'and print the normalized, familiar and canonical forms; "-" reads one reference per line from stdin',
    )
    .argument('<refs...>', 'image references, or "-" for standard input')
    .option('-o, --output <format>', 'output format: json, yaml or table', 'table')
    .option(
      '--default-registry <host>',
      'registry for names without one (default docker.io, with library/ for single names); ' +
        'another registry gets single names without library/',
    )
    .addHelpText(
      'after',
      '\nExit status: 0 when every reference is valid, else 2 (invalid reference).\n' +
        'Example: kimg ref parse busybox registry.k8s.io/pause:3.10 -o json',
    )
    .action(async (refs: string[], options: { output: string; defaultRegistry?: string }) => {
      await run(refs, options, ctx);
    });
};
