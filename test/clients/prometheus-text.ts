/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), enough to check that
 * what /metrics serves is well-formed and to read sample values: every sample belongs to a family
 * declared by `# TYPE` before it, names and labels are valid, values are numbers.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const SUFFIXES: Record<string, readonly string[]> = {
  counter: ["_total", ""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["_sum", "_count", ""],
};

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const helps = new Map<string, string>();
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  text.split("\n").forEach((line, index) => {
    const fail = (why: string): never => {
      throw new Error(`line ${index + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line === "") return;
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!match) return; // a plain comment
      const [, keyword, name, rest] = match as unknown as [string, string, string, string];
      if (!NAME.test(name)) fail("invalid metric name");
      if (keyword === "HELP") helps.set(name, rest);
      else {
        if (!TYPES.has(rest)) fail("unknown type");
        if (families.has(name)) fail("family declared twice");
        families.set(name, { name, type: rest as MetricFamily["type"], help: helps.get(name) ?? "", samples: [] });
      }
      return;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!match) return fail("malformed sample");
    const [, name, , labelText, valueText] = match as unknown as [string, string, string, string | undefined, string];
    const family = familyOf(families, name);
    if (!family) return fail("sample without a # TYPE line before it");
    const labels = parseLabels(labelText ?? "", fail);
    const value = parseValue(valueText);
    if (Number.isNaN(value) && valueText.toLowerCase() !== "nan") fail("value is not a number");
    family.samples.push({ name, labels, value });
  });
  return families;
}

function familyOf(families: Map<string, MetricFamily>, sampleName: string): MetricFamily | undefined {
  for (const family of families.values()) {
    for (const suffix of SUFFIXES[family.type] ?? [""]) {
      if (family.name + suffix === sampleName) return family;
    }
  }
  return undefined;
}

function parseLabels(text: string, fail: (why: string) => never): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const match = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
    if (!match) fail("malformed labels");
    const [whole, name, raw] = match as unknown as [string, string, string];
    if (!LABEL.test(name)) fail(`invalid label name ${name}`);
    if (Object.hasOwn(labels, name)) fail(`label ${name} repeated`);
    labels[name] = raw.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
    rest = rest.slice(whole.length);
  }
  return labels;
}

/** Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any letter case. */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === "+inf" || lower === "inf") return Infinity;
  if (lower === "-inf") return -Infinity;
  if (lower === "nan") return NaN;
  return /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : NaN;
}

/** The value of the one sample of `name` whose labels include `labels`, or undefined. */
export function sampleValue(
  families: Map<string, MetricFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) return sample.value;
    }
  }
  return undefined;
}
