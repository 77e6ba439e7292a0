/**
 * Presentation helpers shared by the store's CLI commands and the CRI face, matching crictl's output:
 * sizes as docker/go-units `HumanSizeWithPrecision(size, 3)` (decimal units, `%.3g`: `8.81kB`,
 * `14kB`, `1.07GB`), ids truncated like crictl `getTruncatedID` (prefix stripped, 13 characters), and
 * a canonical name split into IMAGE and TAG columns like crictl `normalizeRepoTagPair`.
 */

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** Go's `%.<p>g` for a non-negative finite number (shortest form, trailing zeros removed). */
function formatG(x: number, precision: number): string {
  if (x === 0) return '0';
  const [mantissa = '0', expText = '0'] = x.toExponential(precision - 1).split('e');
  const exp = Number(expText);
  const trim = (t: string) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  if (exp < -4 || exp >= precision) {
    return `${trim(mantissa)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return trim(x.toFixed(Math.max(0, precision - 1 - exp)));
}

/**
 * docker/go-units `HumanSizeWithPrecision(bytes, 3)`: `0B`, `999B`, `8.81kB`, `1.07GB`. Integer sizes
 * are rounded exactly, half to even, as Go's `strconv` does (`262500` → `262kB`).
 */
export function humanSize(bytes: number, precision = 3): string {
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < UNITS.length - 1) {
    size /= 1000;
    i++;
  }
  const unit = UNITS[i] as string;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return `${formatG(size, precision)}${unit}`;
  const n = BigInt(bytes);
  const d = 1000n ** BigInt(i);
  let e = (n / d).toString().length - 1;
  const shift = precision - 1 - e;
  const num = shift >= 0 ? n * 10n ** BigInt(shift) : n;
  const den = shift >= 0 ? d : d * 10n ** BigInt(-shift);
  let q = num / den;
  const r2 = (num % den) * 2n;
  if (r2 > den || (r2 === den && q % 2n === 1n)) q++;
  if (q === 10n ** BigInt(precision)) {
    q /= 10n;
    e++;
  }
  const digits = q.toString();
  const trim = (t: string) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  if (e >= precision)
    return `${trim(digits.slice(0, 1) + '.' + digits.slice(1))}e+${String(e).padStart(2, '0')}${unit}`;
  return `${trim(digits.slice(0, e + 1) + '.' + digits.slice(e + 1))}${unit}`;
}

/** crictl's truncated id: `sha256:` stripped, first 13 characters. */
export function truncateId(id: string, prefix = 'sha256:'): string {
  const s = id.startsWith(prefix) ? id.slice(prefix.length) : id;
  return s.length > 13 ? s.slice(0, 13) : s;
}

/**
 * Splits a canonical name into crictl's IMAGE and TAG columns: `reg/repo:tag` → [`reg/repo`, `tag`];
 * `reg/repo@sha256:…` → [`reg/repo`, `<none>`]; `reg/repo:tag@sha256:…` → [`reg/repo`, `tag`].
 */
export function splitNameTag(name: string): [string, string] {
  const at = name.indexOf('@');
  const named = at >= 0 ? name.slice(0, at) : name;
  const slash = named.lastIndexOf('/');
  const colon = named.lastIndexOf(':');
  if (colon > slash) return [named.slice(0, colon), named.slice(colon + 1)];
  return [named, '<none>'];
}

/** The repository of a record name (`docker.io/library/busybox:1` → `docker.io/library/busybox`). */
export function repositoryOfName(name: string): string {
  return splitNameTag(name)[0];
}

/** Whether a record name is tagged (`repo:tag`), as opposed to a repo digest (`repo@sha256:…`). */
export function isTaggedName(name: string): boolean {
  return !name.includes('@') && splitNameTag(name)[1] !== '<none>';
}
