/**
 * A signed-in session that keeps its access token fresh.
 *
 * `SessionKeeper.interceptor` adds `authorization: Bearer <access token>` to
 * every call and, when the token is about to expire, first trades the refresh
 * token for a new session (once, however many calls are waiting for it).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Client, Interceptor } from "@connectrpc/connect";
import type { AuthService, Session } from "./gen/loansuite/auth/v1/auth_service_pb.js";
import { rethrow, unwrap } from "./errors.js";

/** Refresh when less than this is left of the access token's life. */
const REFRESH_MARGIN_MS = 30_000;

export class SessionKeeper {
  #session: Session | undefined;
  #refreshing: Promise<Session> | undefined;

  constructor(
    private readonly auth: Client<typeof AuthService>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sign in with email and password; the session is kept for later calls. */
  async login(email: string, password: string): Promise<Session> {
    const response = await this.auth.login({ email, password }).catch(rethrow);
    this.#session = unwrap(response);
    return this.#session;
  }

  /** The current session, if signed in. */
  get session(): Session | undefined {
    return this.#session;
  }

  /** An access token that is valid for at least the refresh margin. */
  async accessToken(): Promise<string> {
    const session = this.#session;
    if (session === undefined) {
      throw new globalThis.Error("not signed in: call login() first");
    }
    const expires = session.accessTokenExpireTime;
    if (expires === undefined || timestampMs(expires) - this.now() > REFRESH_MARGIN_MS) {
      return session.accessToken;
    }
    return (await this.refresh()).accessToken;
  }

  /** Trade the refresh token for a new session; concurrent callers share one refresh. */
  refresh(): Promise<Session> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<Session> {
    const refreshToken = this.#session?.refreshToken ?? "";
    const response = await this.auth.refreshSession({ refreshToken }).catch(rethrow);
    this.#session = unwrap(response);
    return this.#session;
  }

  /** Revoke the refresh token and forget the session. */
  async logout(): Promise<void> {
    const refreshToken = this.#session?.refreshToken;
    this.#session = undefined;
    if (refreshToken !== undefined) {
      unwrap(await this.auth.logout({ refreshToken }).catch(rethrow));
    }
  }

  /** Adds the bearer token to every call made through a transport that uses it. */
  readonly interceptor: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${await this.accessToken()}`);
    return next(request);
  };
}
