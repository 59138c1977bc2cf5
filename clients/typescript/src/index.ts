/**
 * @loansuite/client: typed clients for the loansuite gRPC services.
 */
export { connect, newRequestId, type ConnectOptions, type Loansuite } from "./clients.js";
export {
  Code,
  ConnectError,
  ErrorCode,
  LoansuiteError,
  decodeRetryInfo,
  rethrow,
  unwrap,
  type Envelope,
  type FieldViolation,
} from "./errors.js";
export { READ_METHODS, requestIds, retryUnavailable, type RetryOptions } from "./retry.js";
export { SessionKeeper } from "./session.js";
export { watchLoans, type WatchEvent, type WatchOptions } from "./watch.js";
export * as audit from "./gen/loansuite/audit/v1/audit_service_pb.js";
export * as auth from "./gen/loansuite/auth/v1/auth_service_pb.js";
export * as common from "./gen/loansuite/common/v1/error_pb.js";
export * as loans from "./gen/loansuite/loans/v1/loan_service_pb.js";
