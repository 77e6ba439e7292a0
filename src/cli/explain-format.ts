/**
 * `kimg explain`'s text form of one container's {@link ImageExplanation} (the chain is the manager's;
 * this only words it). Every line carries images, registry errors or pod names: each is escaped so
 * none drives the terminal.
 */
import { escapeTerminal } from '../gotext/index.js';
import type { ImageExplanation } from '../manager/index.js';

function presenceLine(p: ImageExplanation['presence']): string {
  const what =
    p.error !== undefined
      ? `error: ${p.error}`
      : p.present
        ? `yes, ${p.imageId ?? ''}${p.names?.length ? ` (${p.names.join(', ')})` : ''}`
        : 'no';
  return `  Present:      ${what}${p.checked ? '' : ' (the kubelet does not check for this policy)'}`;
}

function credentialLines(c: ImageExplanation['credentials']): string[] {
  const lines: string[] = [];
  if (c.matches.length === 0) lines.push('  Credentials:  none match (the pull is anonymous)');
  else {
    lines.push('  Credentials:  tried in this order:');
    c.matches.forEach((m, i) =>
      lines.push(`    ${i + 1}. ${m.key} user ${JSON.stringify(m.username)} from ${m.source}`),
    );
  }
  for (const n of c.nearMisses) lines.push(`    near miss: ${n.key} from ${n.source}: ${n.reason}`);
  for (const pr of c.problems) lines.push(`    problem: ${pr}`);
  return lines;
}

function backoffLines(backoff: ImageExplanation['backoff']): string[] {
  if (backoff.length === 0) return ['  Back-off:     none'];
  const lines: string[] = [];
  for (const b of backoff) {
    lines.push(
      `  Back-off:     ${b.inBackOff ? `in back-off until ${b.retryAt} (window ${b.backoffSeconds}s)` : 'window passed (the next attempt pulls)'} [${b.key}]`,
    );
    if (b.lastError !== undefined) lines.push(`    last error: ${b.lastError}`);
  }
  return lines;
}

/** The text `kimg explain` prints for one container (or a bare image). */
export function formatExplanation(x: ImageExplanation): string {
  const lines: string[] = [];
  const head = x.container !== undefined ? `Container ${x.container}` : 'Image';
  lines.push(
    `${head}: ${x.image}${x.pod !== undefined ? `  (pod ${x.pod.namespace}/${x.pod.name}, uid ${x.pod.uid})` : ''}`,
  );
  for (const e of x.extensions ?? []) lines.push(`  Kimg Extension: ${e}`);
  if (x.reference.valid) {
    lines.push(`  Reference:    ${x.reference.canonical ?? ''}`);
    lines.push(
      `    kubelet sends ${JSON.stringify(x.reference.kubeletImage ?? '')}; stored as ${x.reference.pullRef ?? ''}`,
    );
  } else {
    lines.push(`  Reference:    invalid: ${x.reference.error?.message ?? ''}`);
  }
  lines.push(`  Policy:       ${x.policy.value} (${x.policy.origin}: ${x.policy.why})`);
  lines.push(presenceLine(x.presence));
  lines.push(...credentialLines(x.credentials));
  lines.push(...backoffLines(x.backoff));
  if (x.resolved !== undefined) {
    lines.push(
      `  Resolved:     ${x.resolved.error !== undefined ? `error: ${x.resolved.error.message}` : `${x.resolved.digest ?? ''}${x.resolved.unchanged ? ' (same as the present image)' : ''}`}`,
    );
  }
  if (x.verification !== undefined)
    lines.push(`  Verification: ${x.verification.summary} [policy ${x.verification.policy}]`);
  if (x.decision !== undefined) lines.push(`  Decision:     ${x.decision.action} (${x.decision.reason})`);
  lines.push(`  Next:         ${x.next}`);
  return lines.map(escapeTerminal).join('\n') + '\n';
}
