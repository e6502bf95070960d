/** One node of PostgreSQL's `EXPLAIN (FORMAT JSON)` output, with the fields the plan tests read. */
export interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Total Time"?: number;
  "Actual Rows"?: number;
  "Rows Removed by Filter"?: number;
  "Shared Hit Blocks"?: number;
  Plans?: PlanNode[];
}

/** The top node of one `EXPLAIN (FORMAT JSON)` result cell (node-postgres may hand it over parsed or as text). */
export function parsePlan(cell: unknown): PlanNode {
  return ((typeof cell === "string" ? JSON.parse(cell) : cell) as { Plan: PlanNode }[])[0]!.Plan;
}

/** The node and every node below it. */
export function planNodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(planNodes)];
}

/** The plan as an indented outline, for assertion messages and diagnostics. */
export function describePlan(plan: PlanNode, depth = 0): string {
  const on = plan["Index Name"] ? ` using ${plan["Index Name"]}` : plan["Relation Name"] ? ` on ${plan["Relation Name"]}` : "";
  const actual = plan["Actual Total Time"] !== undefined ? ` (${plan["Actual Rows"]} rows, ${plan["Actual Total Time"].toFixed(3)} ms)` : "";
  const removed = plan["Rows Removed by Filter"] ? ` (${plan["Rows Removed by Filter"]} rows removed by filter)` : "";
  return [`${"  ".repeat(depth)}${plan["Node Type"]}${on}${actual}${removed}`, ...(plan.Plans ?? []).map((p) => describePlan(p, depth + 1))].join("\n");
}
