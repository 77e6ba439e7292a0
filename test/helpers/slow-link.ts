/**
 * A TCP relay in front of a real server (a `docker-registry`) that sends at most `bytesPerSecond`
 * towards the client: a slow link, so a test can observe or interrupt a pull while it is in flight.
 * Listens on 127.0.0.1:0; `close()` destroys every relayed connection and stops listening.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface SlowLink {
  /** `127.0.0.1:PORT` of the relay: use it in image references instead of the server's host. */
  host: string;
  close(): Promise<void>;
}

/** Starts a slow link to `127.0.0.1:port` (see the module comment). */
export async function slowLink(port: number, bytesPerSecond: number): Promise<SlowLink> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      upstream.pause();
      setTimeout(() => upstream.resume(), (chunk.length / bytesPerSecond) * 1000);
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}
