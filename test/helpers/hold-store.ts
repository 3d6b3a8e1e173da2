/**
 * A second process for lock tests: opens the store on the data directory named by argv[2],
 * says "ready <pid>" and holds it until its standard input closes (or it is killed).
 */
import { Store } from "../../src/store/store.ts";

const store = await Store.open({ dataDir: process.argv[2]! });
process.stdout.write(`ready ${process.pid}\n`);
process.stdin.resume();
process.stdin.on("end", () => {
  void store.close().then(() => process.exit(0));
});
