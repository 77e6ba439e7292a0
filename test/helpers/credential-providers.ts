/**
 * CredentialProviderConfig files for tests of exec credential provider plugins (kubelet
 * `credentialprovider/v1` config), so each test states only what differs.
 */
import { writeFile } from 'node:fs/promises';

/** A service-account-token provider (KEP-4412 `tokenAttributes`). */
export interface TokenProviderConfig {
  name: string;
  /** `matchImages` patterns. */
  matchImages: string[];
  audience: string;
  cacheType: 'Token' | 'ServiceAccount';
  /** `requiredServiceAccountAnnotationKeys`. */
  requiredAnnotations?: string[];
  defaultCacheDuration?: string;
}

/** Writes a CredentialProviderConfig with one service-account-token provider to `file`. */
export async function writeTokenProviderConfig(file: string, p: TokenProviderConfig): Promise<void> {
  await writeFile(
    file,
    [
      'apiVersion: kubelet.config.k8s.io/v1',
      'kind: CredentialProviderConfig',
      'providers:',
      `  - name: ${p.name}`,
      `    matchImages: ${JSON.stringify(p.matchImages)}`,
      `    defaultCacheDuration: "${p.defaultCacheDuration ?? '10m'}"`,
      '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
      '    tokenAttributes:',
      `      serviceAccountTokenAudience: ${p.audience}`,
      `      cacheType: ${p.cacheType}`,
      '      requireServiceAccount: true',
      ...(p.requiredAnnotations !== undefined
        ? [`      requiredServiceAccountAnnotationKeys: ${JSON.stringify(p.requiredAnnotations)}`]
        : []),
      '',
    ].join('\n'),
  );
}

/** Writes a KubeletConfiguration whose kimg settings name a provider config and its plugin directory. */
export async function writeProviderKubeletConfig(
  file: string,
  providers: string,
  binDir: string,
): Promise<void> {
  await writeFile(
    file,
    [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      'kimg:',
      `  imageCredentialProviderConfig: ${providers}`,
      `  imageCredentialProviderBinDir: ${binDir}`,
      '',
    ].join('\n'),
  );
}
