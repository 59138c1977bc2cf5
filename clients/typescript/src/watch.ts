/**
 * WatchLoans that survives restarts and interruptions.
 *
 * `watchLoans()` yields `subscribed` each time a subscription is live (the
 * server's `x-watch: subscribed` header: from then on every committed change
 * reaches the stream) and `change` for each LoanChange. When the stream is
 * interrupted (UNAVAILABLE, a server that stops, a change feed that broke, a
 * subscriber that fell behind) it subscribes again after a back-off; changes
 * made in between are not replayed, so a caller re-reads what it shows on
 * every `subscribed` after the first. A refusal that waiting does not cure
 * (authentication, a quota) is thrown.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { LoanChange, LoanService } from "./gen/loansuite/loans/v1/loan_service_pb.js";
import { ErrorCode } from "./gen/loansuite/common/v1/error_pb.js";
import { LoansuiteError } from "./errors.js";

export type WatchEvent = { kind: "subscribed" } | { kind: "change"; change: LoanChange };

export interface WatchOptions {
  signal?: AbortSignal;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Envelope errors after which subscribing again is the cure. */
const RESUMABLE_REASONS = new Set(["SUBSCRIBER_TOO_SLOW", "CHANGE_FEED_INTERRUPTED"]);

function resumable(err: unknown): boolean {
  if (err instanceof LoansuiteError) {
    return err.code === ErrorCode.UNAVAILABLE || RESUMABLE_REASONS.has(err.reason);
  }
  return err instanceof ConnectError && err.code === Code.Unavailable;
}

/** Changes to the caller's loans, subscribing again whenever the stream is interrupted. */
export async function* watchLoans(
  loans: Client<typeof LoanService>,
  options: WatchOptions = {},
): AsyncGenerator<WatchEvent, void, undefined> {
  const initial = options.initialBackoffMs ?? 200;
  const ceiling = options.maxBackoffMs ?? 5_000;
  let backoff = initial;
  while (!options.signal?.aborted) {
    try {
      for await (const event of subscribeOnce(loans, options.signal)) {
        backoff = initial;
        yield event;
      }
    } catch (err) {
      const known = err instanceof ConnectError ? (LoansuiteError.fromConnectError(err) ?? err) : err;
      if (options.signal?.aborted) {
        return;
      }
      if (!resumable(known)) {
        throw known;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, backoff));
    backoff = Math.min(ceiling, backoff * 2);
  }
}

const NEVER = new Promise<never>(() => {});

/** One WatchLoans stream: `subscribed` as soon as its header arrives, then its changes. */
async function* subscribeOnce(
  loans: Client<typeof LoanService>,
  signal: AbortSignal | undefined,
): AsyncGenerator<WatchEvent, void, undefined> {
  let live: () => void = () => {};
  let subscribed: Promise<"subscribed"> = new Promise((resolve) => {
    live = () => resolve("subscribed");
  });
  const onHeader = (header: Headers): void => {
    if (header.get("x-watch") === "subscribed") {
      live();
    }
  };
  const responses = loans.watchLoans({}, { signal, onHeader })[Symbol.asyncIterator]();
  let next = responses.next();
  for (;;) {
    const first = await Promise.race([next, subscribed]);
    if (first === "subscribed") {
      subscribed = NEVER;
      yield { kind: "subscribed" };
      continue;
    }
    if (first.done) {
      return;
    }
    const result = first.value.result;
    if (result.case === "error") {
      throw LoansuiteError.fromMessage(result.value);
    }
    if (result.case === "change") {
      yield { kind: "change", change: result.value };
    }
    next = responses.next();
  }
}
