import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { toJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  AuditEventFilterSchema,
  AuditEventType,
  AuditOutcome,
  type AuditEvent,
} from "../../gen/gatehouse/user/v1/audit_pb.js";
import { ListAuditEventsResponseSchema } from "../../gen/gatehouse/user/v1/user_pb.js";
import { rotateSigningKey } from "../../src/signing-keys/signing-keys.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { createManualClock } from "../support/manual-clock.ts";
import { BOOTSTRAP_ENV, rejects, ROOT, uniqueName } from "../users/support.ts";

const HOUR = 3_600_000;
const PASSWORD = "audit trail passphrase one";
const NEW_PASSWORD = "audit trail passphrase two";
const ADMIN_SET_PASSWORD = "audit trail passphrase three";
const T = AuditEventType;

/** Call options: a token, and the address and user agent the call comes from (the test client is a trusted proxy). */
function as(token: string | undefined, ip = "192.0.2.1", userAgent = "audit-test/1.0") {
  return { headers: { "x-forwarded-for": ip, "user-agent": userAgent, ...(token ? { authorization: `Bearer ${token}` } : {}) } };
}

describe("audit trail", () => {
  let server: TestServer;
  let rootToken: string;
  let rootId: string;
  let rootSessionId: string;
  const clock = createManualClock(new Date());
  /** Every secret the scenario handled; none may appear in the trail. */
  const secrets = new Set<string>([ROOT.password, PASSWORD, NEW_PASSWORD, ADMIN_SET_PASSWORD, "wrong password here"]);
  const keep = (...values: (string | undefined)[]) => values.forEach((v) => v && secrets.add(v));

  before(async () => {
    server = await startTestServer(
      { ...BOOTSTRAP_ENV, GATEHOUSE_ROLES: "manager,driver", GATEHOUSE_REFRESH_REUSE_GRACE: "0s", GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1" },
      { clock },
    );
    const signedIn = await server.auth().login({ identifier: { case: "username", value: ROOT.username }, password: ROOT.password }, as(undefined, "192.0.2.100"));
    rootToken = signedIn.tokens!.accessToken;
    rootId = signedIn.user!.id;
    rootSessionId = signedIn.tokens!.sessionId;
    keep(signedIn.tokens!.accessToken, signedIn.tokens!.refreshToken);
  });
  after(() => server.stop());

  /** Every event matching `filter`, walked page by page (checking each page token on the way). */
  async function list(filter: MessageInitShape<typeof AuditEventFilterSchema> = {}, pageSize = 100): Promise<AuditEvent[]> {
    const events: AuditEvent[] = [];
    let pageToken = "";
    do {
      const page = await server.users().listAuditEvents({ pageSize, pageToken, filter }, as(rootToken));
      assert.ok(page.auditEvents.length <= pageSize);
      events.push(...page.auditEvents);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return events;
  }

  /** The one newest event of `type` about or by `userId`. */
  async function latest(type: AuditEventType, userId: string): Promise<AuditEvent> {
    const [event] = await list({ userId, types: [type] });
    assert.ok(event, `an ${T[type]} event for ${userId}`);
    return event;
  }

  test("every kind of event is recorded with its actor, subject, session, outcome, address and user agent", async () => {
    const auth = server.auth();
    const users = server.users();

    // The bootstrap admin and its sign-in.
    const bootstrap = await latest(T.USER_CREATED, rootId);
    assert.equal(bootstrap.actorUserId, "", "created by the server, not by a user");
    assert.equal(bootstrap.details?.source, "bootstrap");
    const rootSignIn = await latest(T.SIGN_IN, rootId);
    assert.deepEqual([rootSignIn.outcome, rootSignIn.actorUserId, rootSignIn.ipAddress], [AuditOutcome.SUCCESS, rootId, "192.0.2.100"]);

    // Sign-up.
    const alice = { username: uniqueName("alice"), email: `${uniqueName("alice")}@example.com` };
    const signedUp = await auth.register({ ...alice, password: PASSWORD }, as(undefined, "198.51.100.1", "Firefox/200"));
    const aliceId = signedUp.user!.id;
    keep(signedUp.tokens!.accessToken, signedUp.tokens!.refreshToken);
    const signUp = await latest(T.SIGN_UP, aliceId);
    assert.deepEqual(
      [signUp.outcome, signUp.actorUserId, signUp.subjectUserId, signUp.sessionId, signUp.ipAddress, signUp.userAgent],
      [AuditOutcome.SUCCESS, aliceId, aliceId, signedUp.tokens!.sessionId, "198.51.100.1", "Firefox/200"],
    );
    assert.deepEqual(signUp.details?.roles, ["user"]);

    // Sign-in: success, a wrong password, an unknown account, a disabled account.
    const login = await auth.login({ identifier: { case: "email", value: alice.email }, password: PASSWORD }, as(undefined, "198.51.100.2"));
    keep(login.tokens!.accessToken, login.tokens!.refreshToken);
    const signIn = await latest(T.SIGN_IN, aliceId);
    assert.deepEqual([signIn.outcome, signIn.sessionId, signIn.details?.identifier], [AuditOutcome.SUCCESS, login.tokens!.sessionId, "email"]);

    clock.advance(1_000);
    await rejects(auth.login({ identifier: { case: "username", value: alice.username }, password: "wrong password here" }, as(undefined, "203.0.113.5")), Code.Unauthenticated, "INVALID_CREDENTIALS");
    const wrong = await latest(T.SIGN_IN, aliceId);
    assert.deepEqual(
      [wrong.outcome, wrong.actorUserId, wrong.subjectUserId, wrong.sessionId, wrong.ipAddress, wrong.details],
      [AuditOutcome.FAILURE, "", aliceId, "", "203.0.113.5", { reason: "INVALID_CREDENTIALS", identifier: "username" }],
    );
    const unknownName = uniqueName("ghost");
    await rejects(auth.login({ identifier: { case: "username", value: unknownName }, password: "wrong password here" }, as(undefined, "203.0.113.6")), Code.Unauthenticated, "INVALID_CREDENTIALS");
    const ghost = (await list({ types: [T.SIGN_IN] })).find((e) => e.ipAddress === "203.0.113.6");
    assert.deepEqual([ghost?.outcome, ghost?.subjectUserId, ghost?.details], [AuditOutcome.FAILURE, "", { reason: "INVALID_CREDENTIALS", identifier: "username" }]);
    assert.ok(!JSON.stringify(await server.sql("select * from audit_events")).includes(unknownName), "what was typed is not kept");

    // A replayed refresh token.
    const rotated = await auth.refresh({ refreshToken: login.tokens!.refreshToken }, as(undefined));
    keep(rotated.tokens!.accessToken, rotated.tokens!.refreshToken);
    clock.advance(1_000);
    await rejects(auth.refresh({ refreshToken: login.tokens!.refreshToken }, as(undefined, "203.0.113.7")), Code.Unauthenticated, "REFRESH_TOKEN_REUSED");
    const reuse = await latest(T.REFRESH_TOKEN_REUSED, aliceId);
    assert.deepEqual(
      [reuse.outcome, reuse.actorUserId, reuse.subjectUserId, reuse.sessionId, reuse.ipAddress],
      [AuditOutcome.FAILURE, "", aliceId, login.tokens!.sessionId, "203.0.113.7"],
    );

    // Logout, revoking one session, logout everywhere, changing the password (wrong, then right).
    const again = async () => {
      const res = await auth.login({ identifier: { case: "email", value: alice.email }, password: PASSWORD }, as(undefined));
      keep(res.tokens!.accessToken, res.tokens!.refreshToken);
      return res.tokens!;
    };

    const a1 = await again();
    await auth.logout({}, as(a1.accessToken));
    const logout = await latest(T.LOGOUT, aliceId);
    assert.deepEqual([logout.actorUserId, logout.subjectUserId, logout.sessionId], [aliceId, aliceId, a1.sessionId]);

    const a2 = await again();
    const a3 = await again();
    await auth.revokeSession({ sessionId: a3.sessionId }, as(a2.accessToken));
    const revoked = await latest(T.SESSION_REVOKED, aliceId);
    assert.deepEqual([revoked.actorUserId, revoked.sessionId], [aliceId, a3.sessionId]);

    await rejects(auth.logoutAll({ password: "wrong password here" }, as(a2.accessToken)), Code.Unauthenticated, "INVALID_CREDENTIALS");
    const logoutAllFailed = await latest(T.LOGOUT_ALL, aliceId);
    assert.deepEqual([logoutAllFailed.outcome, logoutAllFailed.details?.reason], [AuditOutcome.FAILURE, "INVALID_CREDENTIALS"]);
    clock.advance(1_000);
    const { revokedSessions } = await auth.logoutAll({ password: PASSWORD }, as(a2.accessToken));
    const logoutAll = await latest(T.LOGOUT_ALL, aliceId);
    assert.deepEqual([logoutAll.outcome, logoutAll.sessionId, logoutAll.details?.revoked_sessions], [AuditOutcome.SUCCESS, a2.sessionId, revokedSessions]);

    const a4 = await again();
    await rejects(auth.changePassword({ currentPassword: "wrong password here", newPassword: NEW_PASSWORD }, as(a4.accessToken)), Code.Unauthenticated, "INVALID_CREDENTIALS");
    assert.equal((await latest(T.PASSWORD_CHANGED, aliceId)).outcome, AuditOutcome.FAILURE);
    clock.advance(1_000);
    const changed = await auth.changePassword({ currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, as(a4.accessToken));
    keep(changed.tokens!.accessToken, changed.tokens!.refreshToken);
    const passwordChanged = await latest(T.PASSWORD_CHANGED, aliceId);
    assert.deepEqual([passwordChanged.outcome, passwordChanged.sessionId], [AuditOutcome.SUCCESS, changed.tokens!.sessionId]);

    // Admin actions on bob: create, update profile, roles, disable, enable, reset the password, delete.
    const bobName = uniqueName("bob");
    const { user: bob } = await users.createUser({ user: { username: bobName, email: `${bobName}@example.com`, roles: ["driver"] }, password: PASSWORD }, as(rootToken, "192.0.2.200"));
    const bobId = bob!.id;
    const created = await latest(T.USER_CREATED, bobId);
    assert.deepEqual(
      [created.actorUserId, created.subjectUserId, created.ipAddress, created.details?.roles],
      [rootId, bobId, "192.0.2.200", ["driver"]],
    );
    await users.updateUser({ user: { id: bobId, firstName: "Robert", lastName: "Tables" } }, as(rootToken));
    assert.deepEqual((await latest(T.USER_UPDATED, bobId)).details?.fields, ["first_name", "last_name"], "names of fields, not their values");
    await users.updateUser({ user: { id: bobId, roles: ["manager", "driver"] } }, as(rootToken));
    const roles = await latest(T.ROLES_CHANGED, bobId);
    assert.deepEqual([roles.actorUserId, roles.details?.old_roles, roles.details?.new_roles], [rootId, ["driver"], ["manager", "driver"]]);
    await server.auth().login({ identifier: { case: "username", value: bobName }, password: PASSWORD }, as(undefined));
    await users.updateUser({ user: { id: bobId, disabled: true } }, as(rootToken));
    clock.advance(1_000);
    assert.deepEqual((await latest(T.USER_DISABLED, bobId)).details, { revoked_sessions: 1 });
    await rejects(auth.login({ identifier: { case: "username", value: bobName }, password: PASSWORD }, as(undefined, "198.51.100.9")), Code.PermissionDenied, "ACCOUNT_DISABLED");
    const disabledSignIn = await latest(T.SIGN_IN, bobId);
    assert.deepEqual([disabledSignIn.outcome, disabledSignIn.details?.reason], [AuditOutcome.FAILURE, "ACCOUNT_DISABLED"]);
    await users.updateUser({ user: { id: bobId }, updateMask: { paths: ["disabled"] } }, as(rootToken));
    assert.equal((await latest(T.USER_ENABLED, bobId)).actorUserId, rootId);
    await users.setPassword({ id: bobId, password: ADMIN_SET_PASSWORD }, as(rootToken));
    const reset = await latest(T.PASSWORD_RESET, bobId);
    assert.deepEqual([reset.actorUserId, reset.subjectUserId, reset.sessionId], [rootId, bobId, rootSessionId], "the admin's session");

    // A user changing its own profile is the actor of its own event.
    await users.updateUser({ user: { id: aliceId, lastName: "Liddell" } }, as(changed.tokens!.accessToken));
    const selfUpdate = await latest(T.USER_UPDATED, aliceId);
    assert.deepEqual([selfUpdate.actorUserId, selfUpdate.subjectUserId], [aliceId, aliceId]);

    // Invitations: created, used, deleted.
    const { invitation } = await users.createInvitation({ roles: ["manager"], expireTime: timestampFromMs(Date.now() + 24 * HOUR), maxUses: 2 }, as(rootToken));
    keep(invitation!.code);
    const invitationCreated = (await list({ types: [T.INVITATION_CREATED] }))[0]!;
    assert.deepEqual(
      [invitationCreated.actorUserId, invitationCreated.details?.invitation_id, invitationCreated.details?.roles, invitationCreated.details?.max_uses],
      [rootId, invitation!.id, ["manager"], 2],
    );
    const carolName = uniqueName("carol");
    const carol = await auth.register({ username: carolName, email: `${carolName}@example.com`, password: PASSWORD, invitationCode: invitation!.code }, as(undefined));
    keep(carol.tokens!.accessToken, carol.tokens!.refreshToken);
    const used = await latest(T.INVITATION_USED, carol.user!.id);
    assert.deepEqual([used.subjectUserId, used.details?.invitation_id], [carol.user!.id, invitation!.id]);
    await users.deleteInvitation({ id: invitation!.id }, as(rootToken));
    assert.equal((await list({ types: [T.INVITATION_DELETED] }))[0]?.details?.invitation_id, invitation!.id);

    await users.deleteUser({ id: bobId }, as(rootToken));
    const deleted = await latest(T.USER_DELETED, bobId);
    assert.deepEqual([deleted.actorUserId, deleted.subjectUserId, deleted.details?.username], [rootId, bobId, bobName]);
    assert.ok((await list({ userId: bobId })).length >= 8, "a deleted user's history stays");

    // Key rotation, as `gatehouse keys rotate` does it.
    const { kid, retired } = await rotateSigningKey(server.gatehouse.orm.em.getConnection().getClient(), loadConfig({}), clock);
    const rotation = (await list({ types: [T.SIGNING_KEY_ROTATED] }))[0]!;
    assert.deepEqual([rotation.actorUserId, rotation.details?.kid, rotation.details?.retired_kids], ["", kid, retired]);

    // Every type of the API has now been seen.
    const seen = new Set((await list()).map((e) => e.type));
    const missing = Object.values(T).filter((v) => typeof v === "number" && v !== T.UNSPECIFIED && !seen.has(v));
    assert.deepEqual(missing.map((v) => T[v as number]), [], "every AuditEventType is exercised");
  });

  test("nothing secret in any event: no password, token, invitation code or hash, in the table or the API", async () => {
    const hashes = await server.sql<{ value: string }>(
      `select password_hash as value from users
       union all select encode(token_hash, 'hex') from refresh_tokens
       union all select encode(token_hash, 'base64') from refresh_tokens
       union all select encode(code_hash, 'hex') from invitations`,
    );
    const forbidden = [...secrets, ...hashes.map((h) => h.value)].filter((s) => s.length >= 8);
    assert.ok(forbidden.length > 20, "the scenario handled secrets to look for");
    const table = JSON.stringify(await server.sql("select * from audit_events"));
    const api = toJsonString(ListAuditEventsResponseSchema, await server.users().listAuditEvents({ pageSize: 100 }, as(rootToken)));
    for (const secret of forbidden) {
      assert.ok(!table.includes(secret), `audit_events holds a secret: ${secret.slice(0, 12)}…`);
      assert.ok(!api.includes(secret), `ListAuditEvents returns a secret: ${secret.slice(0, 12)}…`);
    }
    // The refresh-token hashes of all sessions stay out too (as the raw bytes' hex and base64).
    assert.ok(!/\$argon2/.test(table));
  });

  test("a change that fails writes no event, and an event that cannot be written undoes its change", async () => {
    const users = server.users();
    const name = uniqueName("tx");
    const { user } = await users.createUser({ user: { username: name, email: `${name}@example.com` }, password: PASSWORD }, as(rootToken));
    const count = async (type: string) =>
      (await server.sql<{ n: number }>("select count(*)::int as n from audit_events where type = $1 and subject_user_id = $2", [type, user!.id]))[0]!.n;

    // A refused change: nothing happened, so nothing is recorded.
    await rejects(users.updateUser({ user: { id: user!.id, email: ROOT.email } }, as(rootToken)), Code.AlreadyExists, "EMAIL_TAKEN");
    assert.equal(await count("user_updated"), 0);
    await rejects(users.deleteUser({ id: rootId }, as(rootToken)), Code.PermissionDenied, "LAST_ADMIN");
    assert.equal((await server.sql("select 1 from audit_events where type = 'user_deleted' and subject_user_id = $1", [rootId])).length, 0);

    // The event is part of the change's transaction: when it cannot be written, the change is undone.
    await server.sql(`create function refuse_audit() returns trigger language plpgsql as $$
      begin if new.type in ('roles_changed', 'sign_up') then raise exception 'audit write refused by the test'; end if; return new; end $$`);
    await server.sql("create trigger refuse_audit before insert on audit_events for each row execute function refuse_audit()");
    try {
      await assert.rejects(users.updateUser({ user: { id: user!.id, roles: ["manager"] } }, as(rootToken)));
      const [row] = await server.sql<{ roles: string[] }>("select roles from users where id = $1", [user!.id]);
      assert.deepEqual(row?.roles, ["user"], "the roles did not change without their event");

      const { invitation } = await users.createInvitation({ expireTime: timestampFromMs(Date.now() + HOUR) }, as(rootToken));
      const lost = uniqueName("lost");
      await assert.rejects(server.auth().register({ username: lost, email: `${lost}@example.com`, password: PASSWORD, invitationCode: invitation!.code }));
      assert.equal((await server.sql("select 1 from users where username = $1", [lost])).length, 0, "no user without its sign-up event");
      const [used] = await server.sql<{ use_count: number }>("select use_count from invitations where id = $1", [invitation!.id]);
      assert.equal(used?.use_count, 0, "and the invitation was not used up");
      assert.equal((await server.sql("select 1 from sessions s join users u on u.id = s.user_id where u.username = $1", [lost])).length, 0);
    } finally {
      await server.sql("drop trigger refuse_audit on audit_events");
      await server.sql("drop function refuse_audit()");
    }

    // And the other way round: a change that fails as it commits takes its event with it. (A
    // deferred constraint trigger on users fires at COMMIT, after the event was written.)
    await server.sql(`create function refuse_commit() returns trigger language plpgsql as $$
      begin if new.roles @> array['driver'] or new.username like 'doomed%' then raise exception 'commit refused by the test'; end if; return new; end $$`);
    await server.sql(`create constraint trigger refuse_commit after insert or update on users
      deferrable initially deferred for each row execute function refuse_commit()`);
    try {
      await assert.rejects(users.updateUser({ user: { id: user!.id, roles: ["driver"] } }, as(rootToken)));
      const [row] = await server.sql<{ roles: string[] }>("select roles from users where id = $1", [user!.id]);
      assert.deepEqual(row?.roles, ["user"]);
      assert.equal(await count("roles_changed"), 0, "no event for a change that did not happen");

      const doomed = uniqueName("doomed");
      await assert.rejects(server.auth().register({ username: doomed, email: `${doomed}@example.com`, password: PASSWORD }, as(undefined, "192.0.2.99")));
      assert.equal((await server.sql("select 1 from users where username = $1", [doomed])).length, 0);
      assert.equal((await server.sql("select 1 from audit_events where type = 'sign_up' and ip = '192.0.2.99'")).length, 0);
    } finally {
      await server.sql("drop trigger refuse_commit on users");
      await server.sql("drop function refuse_commit()");
    }
  });

  test("only admins may read the trail", async () => {
    const name = uniqueName("curious");
    const { tokens } = await server.auth().register({ username: name, email: `${name}@example.com`, password: PASSWORD }, as(undefined));
    await rejects(server.users().listAuditEvents({}, as(tokens!.accessToken)), Code.PermissionDenied, "ADMIN_REQUIRED");
    await rejects(server.users("grpc").listAuditEvents({ filter: { userId: tokens!.sessionId } }, as(tokens!.accessToken)), Code.PermissionDenied, "ADMIN_REQUIRED");
    await rejects(server.users().listAuditEvents({}), Code.Unauthenticated, "TOKEN_MISSING");
  });

  test("pages walk newest first, each event once, even while new events arrive; filters by user, type and time", async () => {
    const everything = await list();
    assert.ok(everything.length > 30);
    for (let i = 1; i < everything.length; i++) {
      const [a, b] = [everything[i - 1]!, everything[i]!];
      const order = Number(a.time!.seconds) * 1e9 + a.time!.nanos - (Number(b.time!.seconds) * 1e9 + b.time!.nanos);
      assert.ok(order > 0 || (order === 0 && a.id > b.id), "newest first, ties by id");
    }

    // A walk in pages of 3 while users keep signing in (later than every event listed so far).
    clock.advance(1_000);
    const walked: AuditEvent[] = [];
    let pageToken = "";
    let page = 0;
    do {
      const res = await server.users().listAuditEvents({ pageSize: 3, pageToken }, as(rootToken));
      walked.push(...res.auditEvents);
      pageToken = res.nextPageToken;
      if (page++ % 3 === 0) await server.auth().login({ identifier: { case: "username", value: ROOT.username }, password: ROOT.password }, as(undefined));
    } while (pageToken !== "");
    assert.deepEqual(walked.map((e) => e.id), everything.map((e) => e.id), "every event exactly once, none of the new ones mid-walk");

    // By user: as actor or as subject.
    const rootEvents = await list({ userId: rootId });
    assert.ok(rootEvents.some((e) => e.actorUserId === rootId && e.subjectUserId !== rootId), "things root did to others");
    assert.ok(rootEvents.some((e) => e.subjectUserId === rootId && e.actorUserId === ""), "things done to root by nobody signed in");
    assert.ok(rootEvents.every((e) => e.actorUserId === rootId || e.subjectUserId === rootId));

    // By type.
    const signIns = await list({ types: [T.SIGN_IN, T.SIGN_UP] }, 4);
    assert.ok(signIns.length > 5 && signIns.every((e) => e.type === T.SIGN_IN || e.type === T.SIGN_UP));

    // By time: [start, end).
    clock.advance(HOUR);
    const start = clock.now();
    await server.auth().login({ identifier: { case: "username", value: ROOT.username }, password: ROOT.password }, as(undefined, "192.0.2.222"));
    clock.advance(HOUR);
    const end = clock.now();
    // (The admin's access token has expired by now: this sign-in gives it a fresh one.)
    const later = await server.auth().login({ identifier: { case: "username", value: ROOT.username }, password: ROOT.password }, as(undefined, "192.0.2.223"));
    rootToken = later.tokens!.accessToken;
    const window = await list({ startTime: timestampFromDate(start), endTime: timestampFromDate(end) });
    assert.deepEqual(window.map((e) => e.ipAddress), ["192.0.2.222"]);
    assert.deepEqual((await list({ startTime: timestampFromDate(end) })).map((e) => e.ipAddress), ["192.0.2.223"]);
  });

  test("page tokens are tied to their filter; bad filters are invalid_argument", async () => {
    // One character of the signed body changed.
    const tamper = (token: string) => `${token.slice(0, 5)}${token[5] === "A" ? "B" : "A"}${token.slice(6)}`;
    const users = server.users();
    const first = await users.listAuditEvents({ pageSize: 2, filter: { types: [T.SIGN_IN] } }, as(rootToken));
    assert.notEqual(first.nextPageToken, "");
    await rejects(users.listAuditEvents({ pageSize: 2, pageToken: first.nextPageToken }, as(rootToken)), Code.InvalidArgument, "VALIDATION_FAILED");
    await rejects(
      users.listAuditEvents({ pageSize: 2, pageToken: tamper(first.nextPageToken), filter: { types: [T.SIGN_IN] } }, as(rootToken)),
      Code.InvalidArgument,
      "VALIDATION_FAILED",
    );
    await rejects(users.listAuditEvents({ filter: { userId: "not-a-uuid" } }, as(rootToken)), Code.InvalidArgument, "VALIDATION_FAILED");
    await rejects(users.listAuditEvents({ filter: { types: [T.UNSPECIFIED] } }, as(rootToken)), Code.InvalidArgument, "VALIDATION_FAILED");
    await rejects(users.listAuditEvents({ filter: { types: [99 as AuditEventType] } }, as(rootToken)), Code.InvalidArgument, "VALIDATION_FAILED");
    const now = Date.now();
    await rejects(
      users.listAuditEvents({ filter: { startTime: timestampFromMs(now), endTime: timestampFromMs(now - 1) } }, as(rootToken)),
      Code.InvalidArgument,
      "VALIDATION_FAILED",
    );
    await rejects(users.listAuditEvents({ pageSize: -1 }, as(rootToken)), Code.InvalidArgument, "VALIDATION_FAILED");
  });

  test("plain JSON: a GET with the request in the query works (NO_SIDE_EFFECTS), and the events read as JSON", async () => {
    const message = encodeURIComponent(JSON.stringify({ pageSize: 1, filter: { types: ["AUDIT_EVENT_TYPE_SIGN_IN"] } }));
    const res = await fetch(`${server.baseUrl}/gatehouse.user.v1.UserService/ListAuditEvents?connect=v1&encoding=json&message=${message}`, {
      headers: { authorization: `Bearer ${rootToken}` },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { auditEvents: Record<string, unknown>[] };
    assert.equal(body.auditEvents.length, 1);
    const [event] = body.auditEvents;
    assert.equal(event!.type, "AUDIT_EVENT_TYPE_SIGN_IN");
    assert.equal(event!.outcome, "AUDIT_OUTCOME_SUCCESS");
    assert.equal(typeof event!.details, "object");
  });
});
