import type { Readable, Writable } from "node:stream";
import type { ReadStream } from "node:tty";

/**
 * Reads a password the way a CLI should: from a terminal with a prompt that echoes nothing
 * (asked twice, to catch typos), or from a pipe (`… | gatehouse create-admin`), where one
 * trailing newline is dropped. Never from the command line, where `ps` and shell history
 * would keep it.
 */
export async function readPassword(input: Readable & Partial<Pick<ReadStream, "isTTY" | "setRawMode">>, prompt: Writable): Promise<string> {
  if (input.isTTY && input.setRawMode) {
    const first = await promptHidden(input as ReadStream, prompt, "Password: ");
    const second = await promptHidden(input as ReadStream, prompt, "Repeat the password: ");
    if (first !== second) throw new Error("the two passwords differ");
    return first;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > 4096) throw new Error("the password on standard input is longer than 4096 bytes");
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

function promptHidden(input: ReadStream, output: Writable, question: string): Promise<string> {
  output.write(question);
  input.setRawMode(true);
  input.resume();
  input.setEncoding("utf8");
  let typed = "";
  return new Promise((resolve, reject) => {
    const finish = (error?: Error) => {
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      output.write("\n");
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (text: string) => {
      for (const char of text) {
        if (char === "\r" || char === "\n") return finish();
        if (char === "\u0003") return finish(new Error("cancelled"));
        if (char === "\u0004") return finish(typed === "" ? new Error("no password given") : undefined);
        if (char === "\u007f" || char === "\b") typed = [...typed].slice(0, -1).join("");
        else if (char >= " ") typed += char;
      }
    };
    input.on("data", onData);
  });
}
