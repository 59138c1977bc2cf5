/**
 * Retries of unary calls that the server answered with UNAVAILABLE.
 *
 * A call is retried only when repeating it cannot write twice: a read, or a
 * mutation that carries a `request_id` (the server answers a replay with the
 * original response). The clients in this package make a `request_id` for
 * every mutation, so their mutations are retried too; the same id is sent on
 * every attempt.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The read methods of the three services: safe to repeat whatever they carry. */
export const READ_METHODS: ReadonlySet<string> = new Set([
  "loansuite.auth.v1.AuthService/GetUser",
  "loansuite.auth.v1.AuthService/WhoAmI",
  "loansuite.auth.v1.AuthService/ListPublicKeys",
  "loansuite.loans.v1.LoanService/GetLoan",
  "loansuite.loans.v1.LoanService/ListLoans",
  "loansuite.loans.v1.LoanService/ListLoanHistory",
  "loansuite.loans.v1.LoanService/ListKpis",
  "loansuite.loans.v1.LoanService/ListKpiResults",
  "loansuite.loans.v1.LoanService/ListMarginAdjustments",
  "loansuite.audit.v1.AuditService/ListAuditEvents",
  "loansuite.audit.v1.AuditService/VerifyChain",
]);

export interface RetryOptions {
  /** Attempts in all, the first included. */
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Gives every mutation that has a `request_id` field and was sent without one
 * a fresh id, before the retry interceptor, so every attempt carries the same.
 */
export const requestIds: Interceptor = (next) => async (request) => {
  const message = request.message as { requestId?: unknown };
  if (!request.stream && message.requestId === "") {
    message.requestId = crypto.randomUUID();
  }
  return next(request);
};

function carriesRequestId(message: unknown): boolean {
  const id = (message as { requestId?: unknown }).requestId;
  return typeof id === "string" && id !== "";
}

/** An interceptor that retries UNAVAILABLE with exponential back-off and jitter. */
export function retryUnavailable(options: RetryOptions = {}): Interceptor {
  const maxAttempts = options.maxAttempts ?? 4;
  const initial = options.initialBackoffMs ?? 100;
  const ceiling = options.maxBackoffMs ?? 2_000;
  return (next) => async (request) => {
    const name = `${request.service.typeName}/${request.method.name}`;
    const repeatable =
      !request.stream && (READ_METHODS.has(name) || carriesRequestId(request.message));
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(request);
      } catch (err) {
        const retry =
          repeatable &&
          attempt < maxAttempts &&
          err instanceof ConnectError &&
          err.code === Code.Unavailable &&
          !request.signal.aborted;
        if (!retry) {
          throw err;
        }
        const backoff = Math.min(ceiling, initial * 2 ** (attempt - 1));
        await new Promise((resolve) => setTimeout(resolve, backoff * (0.5 + Math.random() / 2)));
      }
    }
  };
}
