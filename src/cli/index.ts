/** The CLI face: `runCli(argv, ctx)` for embedding and tests; `main.ts` is the executable. */
export { runCli, buildProgram } from './program.js';
export type { CliContext } from './context.js';
export { EXIT_STATUS_BY_CODE, EXIT_STATUS_MEANING, ExitStatus } from './exit-codes.js';
export { toTable, toJson, toYaml, parseOutputFormat, type OutputFormat } from './output.js';
