/**
 * Why a gRPC client found nothing at a unix socket, from grpc-js's `UNAVAILABLE` details. grpc-js reports
 * a failed connect as `No connection established. Last error: Error: connect ENOENT /run/….sock.
 * Resolution note: ` (its resolver's note, empty for a unix socket). Passed on as it is, that reads as
 * noise with an empty fragment at its end; kimg's messages name the address themselves and say instead
 * which system error the connect got. Shared by the clients of containerd and of CRI runtimes.
 */

/** The system error of the connect when grpc-js named one, and the words for it. */
export interface UnreachableSocket {
  /** `ENOENT`, `ECONNREFUSED`, `EACCES`, … */
  errno?: string;
  /** What went wrong, in a few words (no address, no hint). */
  reason: string;
  /** The connect was refused for lack of permission (`EACCES`, `EPERM`). */
  permission: boolean;
}

/** The words grpc-js frames its connection failures with. */
const GRPC_CONNECTION_TEXT = /No connection established|Last error:|Resolution note:/;

export function unreachableSocket(details: string): UnreachableSocket {
  const errno = /\bconnect (E[A-Z0-9]+)\b/.exec(details)?.[1];
  if (errno !== undefined) {
    switch (errno) {
      case 'ENOENT':
        return { errno, reason: 'the socket does not exist (ENOENT)', permission: false };
      case 'ECONNREFUSED':
        return { errno, reason: 'nothing listens on the socket (ECONNREFUSED)', permission: false };
      case 'EACCES':
      case 'EPERM':
        return { errno, reason: `permission denied on the socket (${errno})`, permission: true };
      default:
        return { errno, reason: `connecting to the socket failed (${errno})`, permission: false };
    }
  }
  // grpc-js's own connection text without a system error (a connection dropped mid-call) keeps its
  // words, without the empty fragments and the `Error:` noise; anything else is the peer's own message
  // (a runtime answering UNAVAILABLE itself) and is passed on as it came.
  if (!GRPC_CONNECTION_TEXT.test(details)) {
    const own = details.trim();
    return { reason: own === '' ? 'no answer' : own, permission: false };
  }
  const cleaned = details
    .split(/(?<=\.)\s+|;/)
    .map((part) =>
      part
        .replace(/\b(?:Last error|Resolution note):/g, '')
        .replace(/\bError:/g, '')
        .replace(/^[\s.;:]+|[\s.;:]+$/g, ''),
    )
    .filter((part) => part !== '')
    .join('; ');
  return { reason: cleaned === '' ? 'no answer' : cleaned, permission: false };
}
