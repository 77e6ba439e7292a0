// Shared by the doc generators: write a generated file, or with `--check` exit 1 when it is stale.
import { readFileSync, writeFileSync } from 'node:fs';

/** Writes `text` to `target` (a file URL), or checks it is current when argv has `--check`. */
export function writeOrCheck(target, text, regenerateCommand) {
  const name = target.pathname.split('/').slice(-2).join('/');
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      // no file yet: it is out of date
    }
    if (current !== text) {
      console.error(`${name} is out of date: run \`${regenerateCommand}\``);
      process.exit(1);
    }
  } else {
    writeFileSync(target, text);
    console.log(`wrote ${name}`);
  }
}
