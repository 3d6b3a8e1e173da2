/**
 * A loopback port that was free a moment ago: for a server a test starts (free until someone
 * else takes it), or for a "host" that refuses every connection, as an offline one does.
 */
import { createServer } from "node:net";

export async function freeLoopbackPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", resolve);
  });
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}
