/**
 * The shapes of `kimg explain`'s answer (src/manager `explain.ts` builds them, `explain-text.ts` words
 * them): kept apart so the two modules do not import each other.
 */
import type { PullDecision } from './policy.js';
import type { VerificationExplanation } from './verification/index.js';

/** Why a policy has the value it has. */
export type PolicyOrigin = 'set' | 'defaulted' | 'always-pull-images';

/** The pod an explained container belongs to. */
export interface ExplainPod {
  name: string;
  namespace: string;
  uid: string;
  /** The pod's RuntimeClass handler, when it has one. */
  runtimeHandler?: string;
}

/** One image to explain: a container of a pod, or a bare image. */
export interface ExplainTarget {
  pod?: ExplainPod;
  container?: string;
  image: string;
  /** The policy after defaulting (`undefined`: the spec has none even after defaulting). */
  policy: string | undefined;
  origin: PolicyOrigin;
  /** A static pod's kimg extensions (`staticPodExtensions`); unset or empty for other pods. */
  extensions?: string[];
}

/** One container's explanation. */
export interface ImageExplanation {
  pod?: { name: string; namespace: string; uid: string };
  container?: string;
  image: string;
  /**
   * What the container's static pod uses beyond what the kubelet allows (kimg extensions: pull Secrets,
   * a ServiceAccount), as `kimg describe pod` says; absent for other pods and when there is none.
   */
  extensions?: string[];
  reference: {
    valid: boolean;
    error?: { code: string; message: string };
    /** `name:tag[@digest]` (tag `latest` added when neither is given). */
    canonical?: string;
    /** What the kubelet sends in the CRI spec (`busybox` → `busybox:latest`). */
    kubeletImage?: string;
    /** The store's name for it (containerd's normalized pull reference). */
    pullRef?: string;
    registry?: string;
    repository?: string;
    tag?: string;
    digest?: string;
  };
  policy: { value: string; origin: PolicyOrigin; why: string };
  presence: {
    checked: boolean;
    present: boolean;
    imageId?: string;
    names?: string[];
    size?: number;
    error?: string;
  };
  credentials: {
    repository?: string;
    matches: { key: string; username: string; source: string }[];
    nearMisses: { key: string; source: string; reason: string }[];
    problems: string[];
  };
  backoff: { key: string; inBackOff: boolean; backoffSeconds: number; retryAt: string; lastError?: string }[];
  /** Whether this pod's credentials are verified for the present image, and the record used (redacted). */
  verification?: VerificationExplanation;
  decision?: PullDecision;
  resolved?: {
    digest?: string;
    presentDigest?: string;
    unchanged?: boolean;
    error?: { code: string; message: string };
  };
  next: string;
}
