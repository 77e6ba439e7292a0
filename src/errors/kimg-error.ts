import { ERROR_CODES, type KimgErrorCode } from './codes.js';

/**
 * Brand on every KimgError instance. `Symbol.for` makes it the same symbol in every copy of the package
 * loaded into one process, so `isKimgError` works where `instanceof` would not (undici `kUndiciError`).
 */
const BRAND = Symbol.for('kimg.error');

/** A registry's `errors[]` entry (distribution spec "Error Codes"). */
export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/**
 * Typed data carried by an error. Every field is optional; each code documents which it fills.
 * Nothing here may hold a credential: URLs are redacted before they get here.
 */
export interface KimgErrorDetails {
  /** The offending input as given (an image reference, a platform, a flag value). */
  input?: string;
  /** A file involved (config file, store file). */
  file?: string;
  /** A key inside a file or map (a docker config key, a YAML path). */
  key?: string;
  /** Expected / actual values for mismatches (digests, sizes, types). */
  expected?: string | number;
  actual?: string | number;
  /** Bytes received before the failure (stalls, truncations). */
  bytesRead?: number;
  /** HTTP facts for registry errors. */
  method?: string;
  url?: string;
  host?: string;
  status?: number;
  registryErrors?: RegistryErrorEntry[];
  /** Whether retrying the same call may succeed. */
  retryable?: boolean;
  /** Seconds the server asked us to wait (429 Retry-After). */
  retryAfterSeconds?: number;
  /** Free-form extra facts (platform lists, tried credential keys, validation problems). */
  items?: string[];
  /** The Kubernetes API request that failed (kube codes): RBAC verb, resource, where, Status reason. */
  kube?: KubeRequestDetails;
}

/** A Kubernetes API request as kube errors describe it (never a token). */
export interface KubeRequestDetails {
  /** RBAC verb: `get`, `list`, `watch`, `create`, `patch`. */
  verb: string;
  /** Plural resource, with its group when not core: `secrets`, `events.events.k8s.io`. */
  resource: string;
  namespace?: string;
  name?: string;
  /** The Status `reason` the API server gave (`Forbidden`, `NotFound`, `Expired`). */
  reason?: string;
}

/** Options of the KimgError constructor: details plus the standard `cause`. */
export type KimgErrorOptions = KimgErrorDetails & { cause?: unknown };

/**
 * The one error class of kimg. `code` is a stable literal union (see `ERROR_CODES`), the message names
 * the offending input and what to do, `cause` keeps the underlying error, `details` the typed data.
 */
export class KimgError<C extends KimgErrorCode = KimgErrorCode> extends Error {
  readonly code: C;
  readonly details: Readonly<KimgErrorDetails>;
  declare readonly [BRAND]: true;

  constructor(code: C, message: string, options: KimgErrorOptions = {}) {
    const { cause, ...details } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'KimgError';
    this.code = code;
    this.details = Object.freeze(details);
    Object.defineProperty(this, BRAND, { value: true, enumerable: false });
  }

  /** Whether retrying may help: the explicit detail, else false. */
  get retryable(): boolean {
    return this.details.retryable === true;
  }

  /** A plain, credential-free object for JSON output (`-o json`, events, logs). */
  toJSON(): { code: C; message: string } & KimgErrorDetails {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/** Duck-typed view of a KimgError from any loaded copy of the package. */
export interface KimgErrorLike<C extends KimgErrorCode = KimgErrorCode> extends Error {
  readonly code: C;
  readonly details: Readonly<KimgErrorDetails>;
}

/**
 * True when `e` is a KimgError (from this or any other loaded copy of kimg), optionally with the given
 * code or one of the given codes.
 */
export function isKimgError<C extends KimgErrorCode>(
  e: unknown,
  code?: C | readonly C[],
): e is KimgErrorLike<C> {
  if (typeof e !== 'object' || e === null) return false;
  if ((e as Record<symbol, unknown>)[BRAND] !== true) return false;
  if (code === undefined) return true;
  const actual = (e as { code?: unknown }).code;
  return Array.isArray(code) ? code.includes(actual as C) : actual === code;
}

/** True when `code` is one of kimg's codes (for data read back from JSON). */
export function isKimgErrorCode(code: unknown): code is KimgErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/**
 * Wraps anything thrown into a KimgError: KimgErrors pass through, AbortErrors become `ABORTED`,
 * everything else `INTERNAL` with the original as `cause`.
 */
export function toKimgError(e: unknown, context?: string): KimgErrorLike {
  if (isKimgError(e)) return e;
  if (e instanceof Error && e.name === 'AbortError') {
    return new KimgError(
      'ABORTED',
      context ? `${context}: operation was cancelled` : 'operation was cancelled',
      { cause: e },
    );
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new KimgError('INTERNAL', `${context ? context + ': ' : ''}unexpected error: ${msg}`, { cause: e });
}

const JSON_KEPT_CONTROLS = /[\u007f-\u009f]/g;

/**
 * Quote an input for a message the way Go's %q would (double quotes, escapes), capped in length.
 * `JSON.stringify` escapes C0 controls only; DEL and the C1 controls (U+0080–U+009F, which some
 * terminals read as CSI and OSC) are escaped too, as %q does, so a quoted value is inert text wherever
 * the message goes.
 */
export function quote(input: string, max = 200): string {
  const s = input.length > max ? input.slice(0, max) + '…' : input;
  return JSON.stringify(s).replace(
    JSON_KEPT_CONTROLS,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Quote any decoded value for a message: strings as {@link quote}, everything else as capped JSON.
 * Never throws — a parsed file can hold `{"toString": null}`, which `String(v)` would choke on.
 */
export function quoteValue(v: unknown, max = 200): string {
  if (typeof v === 'string') return quote(v, max);
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  if (s === undefined) return `<${typeof v}>`;
  s = s.replace(JSON_KEPT_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return s.length > max ? s.slice(0, max) + '…' : s;
}
