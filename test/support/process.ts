import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

export interface ServingProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly output: () => string;
  /**
   * Resolves with the output once it matches `pattern`. A running server writes its log lines in
   * batches (up to 200 ms late), so a line about something that just happened is waited for.
   */
  outputMatching(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `gatehouse serve` as a separate process and waits for it to listen. */
export function spawnGatehouse(env: Record<string, string>, cwd?: string): Promise<ServingProcess> {
  const child = spawn(process.execPath, [MAIN, "serve"], {
    cwd,
    env: { PATH: process.env.PATH ?? "", GATEHOUSE_HOST: "127.0.0.1", GATEHOUSE_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // A server that never said it serves must not outlive the test (its pipes would keep the run waiting).
      child.kill("SIGKILL");
      reject(new Error(`gatehouse did not start:\n${output}`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      const match = /"port":(\d+),[^\n]*"msg":"Gatehouse is serving"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({
          child,
          port: Number(match[1]),
          output: () => output,
          outputMatching: async (pattern, timeoutMs = 5_000) => {
            const deadline = Date.now() + timeoutMs;
            while (!pattern.test(output) && Date.now() < deadline) await new Promise((wake) => setTimeout(wake, 25));
            return output;
          },
          stop: (signal = "SIGTERM") => {
            child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gatehouse exited with ${code} before serving:\n${output}`));
    });
  });
}

/** Runs the CLI to completion. */
export function runGatehouse(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}
