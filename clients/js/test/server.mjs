// A real `tributary serve` in embedded mode for the tests: its own data directory and admin key, stopped at the end.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, openSync, readFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPOSITORY = resolve(import.meta.dirname, "../../..");

function python() {
  const chosen = process.env.TRIBUTARY_PYTHON || join(REPOSITORY, ".venv/bin/python");
  if (!existsSync(chosen)) {
    throw new Error(
      `no Python for the server at ${chosen}: set TRIBUTARY_PYTHON (the tests never skip for want of one)`,
    );
  }
  return chosen;
}

function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

/** Starts the server and waits for GET /readyz = 200; `stop()` kills it and removes its data. */
export async function startServer({ timeoutMs = 120_000 } = {}) {
  const executable = python();
  const key = execFileSync(executable, ["-c", "from tributary.auth.keys import new_key; print(new_key().key)"], {
    encoding: "utf8",
  }).trim();
  const directory = mkdtempSync(join(tmpdir(), "tributary-js-"));
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("TRIBUTARY_")));
  env.TRIBUTARY_DATA_DIR = join(directory, "data");
  env.TRIBUTARY_ADMIN_KEY = key;
  const logPath = join(directory, "server.log");
  const log = openSync(logPath, "a");
  const child = spawn(executable, ["-m", "tributary", "serve", "--port", String(port)], {
    env,
    stdio: ["ignore", log, log],
  });
  let exited = null;
  child.on("exit", (code, signal) => {
    exited = code ?? signal;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (exited === null) {
      const gone = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(directory, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== null) {
      const tail = readFileSync(logPath, "utf8").slice(-4000);
      await stop();
      throw new Error(`the server exited with ${exited}:\n${tail}`);
    }
    try {
      const answer = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (answer.status === 200) return { url, key, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the server on ${url} was not ready within ${timeoutMs} ms`);
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}
