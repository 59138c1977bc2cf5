/**
 * Envelope errors as exceptions.
 *
 * Every answer of the domain is an envelope, `oneof result { <payload> = 1;
 * Error error = 2; }`, with gRPC status OK. `unwrap()` returns the payload or
 * throws a `LoansuiteError`. Outcomes about transport or capacity (a server
 * that is stopping, a throttle, a quota) are real gRPC statuses instead; they
 * carry the same `Error` as a `google.rpc.Status` detail, and
 * `LoansuiteError.fromConnectError()` reads it.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ConnectError, Code } from "@connectrpc/connect";
import {
  ErrorCode,
  ErrorSchema,
  type Error as ErrorMessage,
} from "./gen/loansuite/common/v1/error_pb.js";

/** One field that failed validation, named by its proto field path (`maturity_date`). */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** An error the service answered: its code, stable reason, fields and request id. */
export class LoansuiteError extends globalThis.Error {
  override readonly name = "LoansuiteError";

  constructor(
    readonly code: ErrorCode,
    readonly reason: string,
    message: string,
    readonly fieldViolations: readonly FieldViolation[],
    readonly requestId: string,
    /** The gRPC status when the error came as one (UNAVAILABLE, RESOURCE_EXHAUSTED), else undefined. */
    readonly status?: Code,
    /** How long the server asked to wait before a retry, when it said. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  /** The code's name without its prefix: `INVALID_ARGUMENT`. */
  get codeName(): string {
    return ErrorCode[this.code] ?? String(this.code);
  }

  static fromMessage(error: ErrorMessage, status?: Code, retryAfterMs?: number): LoansuiteError {
    return new LoansuiteError(
      error.code,
      error.reason,
      error.message,
      error.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
      error.requestId,
      status,
      retryAfterMs,
    );
  }

  /** The Error a status carries as a detail, or undefined for the transport's own statuses. */
  static fromConnectError(err: ConnectError): LoansuiteError | undefined {
    const [detail] = err.findDetails(ErrorSchema);
    if (detail === undefined) {
      return undefined;
    }
    return LoansuiteError.fromMessage(detail, err.code, retryDelayMs(err));
  }
}

const RETRY_INFO = "google.rpc.RetryInfo";

/** google.rpc.RetryInfo's delay in milliseconds, decoded by hand: the type is one Duration. */
function retryDelayMs(err: ConnectError): number | undefined {
  for (const detail of err.details) {
    if ("desc" in detail || detail.type !== RETRY_INFO) {
      continue;
    }
    return decodeRetryInfo(detail.value);
  }
  return undefined;
}

/** RetryInfo { Duration retry_delay = 1 }, Duration { int64 seconds = 1; int32 nanos = 2 }. */
export function decodeRetryInfo(bytes: Uint8Array): number | undefined {
  const outer = new BinaryReader(bytes);
  while (outer.pos < outer.len) {
    const [number, wireType] = outer.tag();
    if (number !== 1 || wireType !== WireType.LengthDelimited) {
      outer.skip(wireType);
      continue;
    }
    const duration = new BinaryReader(outer.bytes());
    let [seconds, nanos] = [0, 0];
    while (duration.pos < duration.len) {
      const [field, type] = duration.tag();
      if (field === 1) {
        seconds = Number(duration.int64());
      } else if (field === 2) {
        nanos = duration.int32();
      } else {
        duration.skip(type);
      }
    }
    return seconds * 1000 + Math.round(nanos / 1e6);
  }
  return undefined;
}

/** An envelope response: the generated `...Response` types all have this shape. */
export interface Envelope<T> {
  result: { case: "error"; value: ErrorMessage } | { case: string; value: T } | { case: undefined; value?: undefined };
}

/** The payload of an envelope, or a thrown LoansuiteError when it holds an error. */
export function unwrap<T>(response: Envelope<T>): T {
  const result = response.result;
  if (result.case === "error") {
    throw LoansuiteError.fromMessage(result.value as ErrorMessage);
  }
  if (result.case === undefined) {
    throw new LoansuiteError(ErrorCode.INTERNAL, "EMPTY_RESPONSE", "the response holds neither a result nor an error", [], "");
  }
  return result.value as T;
}

/** Turn a ConnectError that carries an Error detail into a LoansuiteError; rethrow others. */
export function rethrow(err: unknown): never {
  if (err instanceof ConnectError) {
    throw LoansuiteError.fromConnectError(err) ?? err;
  }
  throw err;
}

export { Code, ConnectError, ErrorCode };
