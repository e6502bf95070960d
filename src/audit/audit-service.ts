import type { EntityManager } from "../platform/database/orm.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { pageSizeOf, type PageTokens } from "../users/page-token.ts";
import { sqlExecutor } from "../users/transaction.ts";
import { listAuditEventPage, type AuditCursor, type AuditEventFilter, type AuditEventRecord } from "./audit-repository.ts";

export interface ListAuditEventsInput {
  pageSize: number;
  pageToken: string;
  filter: AuditEventFilter;
}

/** Reading the audit trail, for admins (the handler checks the caller first). */
export function createAuditService(deps: { pageTokens: PageTokens }) {
  const { pageTokens } = deps;
  return {
    async listAuditEvents(em: EntityManager, input: ListAuditEventsInput): Promise<{ events: AuditEventRecord[]; nextPageToken: string }> {
      const limit = pageSizeOf(input.pageSize);
      const { filter } = input;
      // A token is only good for the filter it was issued for.
      const scope = {
        userId: filter.userId ?? null,
        types: [...filter.types].sort(),
        startTime: filter.startTime?.toISOString() ?? null,
        endTime: filter.endTime?.toISOString() ?? null,
      };
      const db = sqlExecutor(em);
      const cursor = checkedCursor(await pageTokens.read(db, "audit_events", scope, input.pageToken));
      const page = await listAuditEventPage(db, filter, cursor, limit);
      return {
        events: page.events,
        nextPageToken: page.next ? await pageTokens.issue(db, "audit_events", scope, page.next) : "",
      };
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PG_TIMESTAMP = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2}){0,2}|Z)?$/;

/** The cursor of a verified page token, checked for shape anyway (a signed token is still input). */
function checkedCursor(cursor: unknown): AuditCursor | undefined {
  if (cursor === undefined) return undefined;
  const c = cursor as Record<string, unknown>;
  if (typeof c.time === "string" && PG_TIMESTAMP.test(c.time) && typeof c.id === "string" && UUID.test(c.id)) return { time: c.time, id: c.id };
  throw gatehouseError("VALIDATION_FAILED", "The page token is not valid for this list; start again from the first page.", {
    metadata: { field: "page_token" },
  });
}
