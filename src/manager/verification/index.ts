/**
 * Credential verification for images already present on the node (KEP-2535, feature gate
 * `KubeletEnsureSecretPulledImages`, on by default since Kubernetes 1.35).
 *
 * Without it, any pod on a node can run any image the node holds, even a private image another tenant
 * pulled with its own Secret. With it, before a pod may use a present image (pull policy
 * `IfNotPresent` or `Never`), the node checks the pod's credentials against the pull records
 * (`pull-records.ts`):
 * - the node-config policy (`imagePullCredentialsVerificationPolicy`) may waive the check:
 *   `NeverVerify` always; `NeverVerifyPreloadedImages` (the default) for images the node did not pull
 *   itself (no pulled record and no pull intent: loaded with `kimg load`, copied in by another tool,
 *   or present before the records existed); `NeverVerifyAllowlistedImages` for images whose raw
 *   container string matches `preloadedImagesVerificationAllowlist`; `AlwaysVerify` never;
 * - otherwise the image may be used when the record for the image id maps the image's name to
 *   `nodePodsAccessible` (node-wide credentials or an anonymous pull), to a Secret with the same
 *   credential hash (whatever its coordinates), to the same Secret (namespace, name, uid) whose
 *   content was rotated (the new hash is recorded without a pull), or to the pod's ServiceAccount
 *   (credential plugin in service-account token mode);
 * - anything else makes the pod pull with its own credentials, which verifies them at the registry
 *   (blobs already present are not downloaded again); a successful pull records the credential that
 *   worked.
 *
 * `mustAttemptImagePull` is the pure decision; `PullRecordsVerifier` implements the image manager's
 * `CredentialVerifier` hook over a `PullRecordsAccessor`: pull intents around every pull (ref-counted in
 * memory, one file per image string), pulled records merged as upstream, reconciliation of interrupted
 * pulls on start, pruning after image removal.
 *
 * Source: kubernetes `pkg/kubelet/images/pullmanager/{image_pull_manager.go,image_pull_policies.go}`,
 * `pkg/kubelet/images/image_manager.go` (getPodCredentials, trackedToImagePullCreds),
 * `pkg/credentialprovider/keyring.go` (hashAuthConfig).
 */
/*
 * Layout, like the kubelet's `pkg/kubelet/images/pullmanager/`: `policy.ts` (which images are verified),
 * `credentials.ts` (a pod's credentials as records see them, merging), `decision.ts` (the pure
 * decision), `../pull-records.ts` (the state), `manager.ts` (`PullRecordsVerifier`, `openNodeVerifier`).
 */
export * from './policy.js';
export * from './credentials.js';
export * from './decision.js';
export * from './manager.js';
