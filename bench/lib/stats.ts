/**
 * Summaries and the Markdown table of the pull bench. Figures are min / median / max of the timed runs
 * (the warm-up run is kept in the JSON but never summarised), as docs/design/performance.md quotes them; MB/s is
 * registry bytes (compressed blob sizes, 10^6) divided by the median wall time.
 */

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Min, median and max of a non-empty list. */
export function minMedianMax(xs: readonly number[]): { min: number; median: number; max: number } {
  return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs) };
}

export interface Summary {
  runs: number;
  minS: number;
  medianS: number;
  maxS: number;
  /** Compressed MB (10^6 bytes) per second at the median. */
  mbPerS: number;
  /** Highest peak RSS of any (single) process over the timed runs, MiB. */
  peakRssMiB: number;
  /** Median CPU seconds (user + sys) of the measured processes per run. */
  cpuS: number;
  /** Daemon (containerd) figures, when the work is done by one. */
  daemonPeakRssMiB?: number;
  daemonCpuS?: number;
}

/** What one timed run contributes to a summary. */
export interface SampleLike {
  wallS: number;
  /** Peak RSS of the largest process of the run, KiB. */
  maxRssKiB: number;
  cpuS: number;
  daemonMaxRssKiB?: number;
  daemonCpuS?: number;
}

export function summarize(samples: readonly SampleLike[], bytes: number): Summary {
  const walls = samples.map((s) => s.wallS);
  const med = median(walls);
  const out: Summary = {
    runs: samples.length,
    minS: Math.min(...walls),
    medianS: med,
    maxS: Math.max(...walls),
    mbPerS: bytes / 1e6 / med,
    peakRssMiB: Math.max(...samples.map((s) => s.maxRssKiB)) / 1024,
    cpuS: median(samples.map((s) => s.cpuS)),
  };
  const d = samples.filter((s) => s.daemonMaxRssKiB !== undefined);
  if (d.length > 0) {
    out.daemonPeakRssMiB = Math.max(...d.map((s) => s.daemonMaxRssKiB ?? 0)) / 1024;
    out.daemonCpuS = median(d.map((s) => s.daemonCpuS ?? 0));
  }
  return out;
}

/** One row of the Markdown table. */
export interface TableRow {
  section: string;
  image: string;
  tool: string;
  summary?: Summary;
  /** Shown instead of figures (e.g. "not available: ..."). */
  note?: string;
  ratioVsSkopeo?: number;
  ratioVsContainerd?: number;
  /** Bytes fetched from the registry per run (median) and the image's size, for the concurrency rows. */
  fetched?: { bytes: number; expected: number };
}

const f3 = (n: number): string => n.toFixed(3);
const f2 = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(2));
/** MB/s: whole numbers, but two decimals for tiny images so the column is not all zeros. */
const f0 = (n: number): string => (!Number.isFinite(n) ? '—' : n < 10 ? n.toFixed(2) : n.toFixed(0));
const f1 = (n: number): string => n.toFixed(1);

function rssCell(s: Summary): string {
  return s.daemonPeakRssMiB !== undefined
    ? `${f1(s.peakRssMiB)} + daemon ${f1(s.daemonPeakRssMiB)}`
    : f1(s.peakRssMiB);
}

function cpuCell(s: Summary): string {
  return s.daemonCpuS !== undefined ? `${f2(s.cpuS)} + daemon ${f2(s.daemonCpuS)}` : f2(s.cpuS);
}

/** A GitHub-flavoured Markdown table of the rows (paste-able into the README). */
export function markdownTable(rows: readonly TableRow[]): string {
  const head = [
    'image',
    'tool',
    'runs',
    'min s',
    'median s',
    'max s',
    'MB/s @median',
    'peak RSS MiB',
    'CPU s (median)',
    'vs skopeo',
    'vs containerd',
    'fetched / image MB',
  ];
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map((h, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const r of rows) {
    const s = r.summary;
    const fetched = r.fetched ? `${f1(r.fetched.bytes / 1e6)} / ${f1(r.fetched.expected / 1e6)}` : '';
    const cells =
      s === undefined
        ? [r.image, r.tool, '', '', r.note ?? '—', '', '', '', '', '', '', '']
        : [
            r.image,
            r.tool,
            String(s.runs),
            f3(s.minS),
            `**${f3(s.medianS)}**`,
            f3(s.maxS),
            f0(s.mbPerS),
            rssCell(s),
            cpuCell(s),
            f2(r.ratioVsSkopeo),
            f2(r.ratioVsContainerd),
            fetched,
          ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
