/**
 * Credentials bound to one registry host. A password given on the command line (`--creds`) belongs to
 * one registry; where the image to resolve is named by someone else (a pod admitted by the webhook),
 * sending it to whatever host the image names would hand it to anyone who can create a pod. The
 * binding is checked on the image's host after normalization (`nginx` is `docker.io`).
 */
/** The spellings of Docker Hub's registry host that mean one registry. */
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_HOSTS.has(h) ? 'docker.io' : h;
}

/**
 * Whether credentials bound to `boundHost` may be sent to `imageHost`: the same host (and port; Docker
 * Hub's aliases count as one host), or any host when the credentials are not bound.
 */
export function credentialsBindTo(boundHost: string | undefined, imageHost: string): boolean {
  return boundHost === undefined || canonicalHost(boundHost) === canonicalHost(imageHost);
}
