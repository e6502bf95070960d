// The browser side of the example: sign up, sign in, show the profile (GetMe), refresh the tokens
// and sign out, through Connect-Web. Bundled with esbuild by serve.ts.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuthService, type TokenPair } from "gatehouse/auth/v1";
import type { User } from "gatehouse/user/v1";

// Gatehouse's address: ?gatehouse=… on the page URL, else the same host on port 8080.
const baseUrl = new URLSearchParams(location.search).get("gatehouse") ?? `${location.protocol}//${location.hostname}:8080`;

// In memory only: a page reload signs out, and no script can read tokens from storage.
let tokens: TokenPair | undefined;
let refreshes = 0;

const bearer: Interceptor = (next) => (req) => {
  if (tokens) req.header.set("authorization", `Bearer ${tokens.accessToken}`);
  return next(req);
};
// credentials: "include" lets Gatehouse's cookie mode (GATEHOUSE_REFRESH_COOKIE=on) work: the refresh
// token then lives in an HttpOnly cookie, the responses carry an empty one, and Refresh reads the cookie.
const auth = createClient(
  AuthService,
  createConnectTransport({
    baseUrl,
    interceptors: [bearer],
    fetch: (input, init) => globalThis.fetch(input, { ...init, credentials: "include" }),
  }),
);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const field = (form: HTMLFormElement, name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;

function status(text: string, error = false): void {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function show(user: User | undefined): void {
  $("signed-out").hidden = Boolean(user);
  $("signed-in").hidden = !user;
  if (!user || !tokens) return;
  $("profile-username").textContent = user.username;
  $("profile-email").textContent = user.email;
  $("profile-name").textContent = `${user.firstName} ${user.lastName}`.trim();
  $("profile-roles").textContent = user.roles.join(", ");
  $("session-id").textContent = tokens.sessionId;
  $("token-expiry").textContent = tokens.accessTokenExpireTime ? timestampDate(tokens.accessTokenExpireTime).toISOString() : "";
  $("refresh-count").textContent = String(refreshes);
  $("refresh-token-location").textContent = tokens.refreshToken ? "held by this page" : "HttpOnly cookie (cookie mode)";
}

/** Runs an action, showing Gatehouse's error message (and reason) when it fails. */
async function attempt(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    const e = ConnectError.from(error);
    status(`${Code[e.code]}: ${e.rawMessage}`, true);
  }
}

$<HTMLFormElement>("sign-up").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  void attempt(async () => {
    const res = await auth.register({
      username: field(form, "username"),
      email: field(form, "email"),
      password: field(form, "password"),
      firstName: field(form, "firstName"),
      lastName: field(form, "lastName"),
    });
    tokens = res.tokens;
    const { user } = await auth.getMe({});
    show(user);
    status(`Signed up as ${user?.username}.`);
  });
});

$<HTMLFormElement>("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  void attempt(async () => {
    const res = await auth.login({ identifier: { case: "email", value: field(form, "email") }, password: field(form, "password") });
    tokens = res.tokens;
    const { user } = await auth.getMe({});
    show(user);
    status(`Signed in as ${user?.username}.`);
  });
});

$("refresh").addEventListener("click", () => {
  void attempt(async () => {
    if (!tokens) return;
    const res = await auth.refresh({ refreshToken: tokens.refreshToken });
    tokens = res.tokens;
    refreshes++;
    const { user } = await auth.getMe({});
    show(user);
    status("Tokens refreshed.");
  });
});

$("sign-out").addEventListener("click", () => {
  void attempt(async () => {
    if (tokens) await auth.logout({ refreshToken: tokens.refreshToken });
    tokens = undefined;
    refreshes = 0;
    show(undefined);
    status("Signed out.");
  });
});

show(undefined);
