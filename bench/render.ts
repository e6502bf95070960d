/**
 * Re-renders a results file's markdown from its JSON (after a change to how the table is drawn or
 * how targets are checked), without measuring again: `node bench/render.ts bench/results/<date>.json`.
 */
import { readFile, writeFile } from "node:fs/promises";
import { buildRows, renderMarkdown, renderProfiles, type BenchReport } from "./report.ts";

const [file] = process.argv.slice(2);
if (!file?.endsWith(".json")) {
  process.stderr.write("Usage: node bench/render.ts bench/results/<date>.json\n");
  process.exit(2);
}
const report = JSON.parse(await readFile(file, "utf8")) as BenchReport;
report.rows = buildRows(report);
const markdown = `${renderMarkdown(report)}\n${report.profiles.length ? `\n${renderProfiles(report.profiles)}\n` : ""}`;
await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
await writeFile(file.replace(/\.json$/, ".md"), markdown);
process.stdout.write(markdown);
